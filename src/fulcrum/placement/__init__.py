"""Pure placement decisions: which SE hosts which virtual service, and when SEs are needed."""
