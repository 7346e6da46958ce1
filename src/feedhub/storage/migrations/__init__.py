"""Alembic migrations, run by ``Storage.migrate()`` with a Config built in code (no alembic.ini).

Revisions describe the schema as it was at each step, with plain SQLAlchemy types, and never
import ``feedhub.storage.schema``: that module shows the schema as it is now, and a test checks
that the head revision builds exactly that.
"""

# The newest revision. ``migrate()`` compares the database with it to skip loading Alembic on an
# up-to-date database; a test checks it against Alembic's own idea of the head.
SCHEMA_HEAD = "0008"
