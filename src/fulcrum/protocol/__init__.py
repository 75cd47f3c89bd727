"""Versioned controller <-> Service Engine wire schemas and request signing (pure, no I/O)."""
