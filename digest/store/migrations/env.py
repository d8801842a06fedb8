"""Alembic's entry point: run the migrations on the connection digest hands over.

digest.store.migrate opens the connection, takes the write lock and holds the
transaction; this only configures Alembic on it. There is no offline (--sql) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from digest.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the migrations through digest.store.migrate, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters most of a table only by copying it: batch mode does that for us.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
