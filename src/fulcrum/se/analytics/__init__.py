"""SE-side analytics: request logs from HAProxy, counter sampling and the periodic analytics report."""
