"""Alembic environment: runs on the connection the controller hands in (see Database.migrate)."""

from alembic import context

from fulcrum.controller.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    raise SystemExit("run migrations through `fulcrum controller migrate`, not the alembic CLI")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
