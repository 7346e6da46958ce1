"""Full-text search: each item's search terms, and an index over them on either database.

``items.search_terms`` holds the item's terms (``feedhub.core.searchterms``: Chinese as
overlapping character pairs, other words as words); ``search_at`` is when they were made
(NULL: the item is new or changed and waits for the indexer). SQLite indexes the column with
an FTS5 table over it (external content: the terms are stored once, in ``items``), kept in step
by triggers; PostgreSQL with a GIN index on its ``simple`` text-search vector.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE = (
    "CREATE VIRTUAL TABLE items_fts USING fts5("
    "search_terms, content='items', content_rowid='pk', tokenize='unicode61')",
    "CREATE TRIGGER items_fts_insert AFTER INSERT ON items WHEN new.search_terms IS NOT NULL "
    "BEGIN INSERT INTO items_fts(rowid, search_terms) VALUES (new.pk, new.search_terms); END",
    "CREATE TRIGGER items_fts_update AFTER UPDATE OF search_terms ON items BEGIN "
    "INSERT INTO items_fts(items_fts, rowid, search_terms) "
    "SELECT 'delete', old.pk, old.search_terms WHERE old.search_terms IS NOT NULL; "
    "INSERT INTO items_fts(rowid, search_terms) "
    "SELECT new.pk, new.search_terms WHERE new.search_terms IS NOT NULL; END",
)
POSTGRES = (
    "CREATE INDEX ix_items_search ON items "
    "USING gin (to_tsvector('simple', coalesce(search_terms, '')))"
)


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("search_terms", sa.Text(), nullable=True))
        batch.add_column(sa.Column("search_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_items_search_at", "items", ["search_at"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
    else:
        op.execute(POSTGRES)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS items_fts_update")
        op.execute("DROP TRIGGER IF EXISTS items_fts_insert")
        op.execute("DROP TABLE IF EXISTS items_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_items_search")
    op.drop_index("ix_items_search_at", "items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("search_at")
        batch.drop_column("search_terms")
