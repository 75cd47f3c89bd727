"""The Octavia v2 (LBaaS) face of the native model: ids, request schemas, translation, statuses."""
