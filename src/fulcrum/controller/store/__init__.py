"""Persistence: SQLAlchemy tables, engine set-up and migrations (SQLite WAL by default, PostgreSQL)."""
