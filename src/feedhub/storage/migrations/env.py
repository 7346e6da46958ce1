"""Alembic environment: migrate over the connection that ``Storage.migrate()`` hands in.

Running through the caller's connection keeps the migration inside its transaction (and, on
PostgreSQL, under its advisory lock), and works the same from a source tree or an installed wheel.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from feedhub.storage.schema import metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run feedhub migrations through Storage.migrate(), not the alembic CLI")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite can hardly ALTER a table; batch mode rebuilds it instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
