"""Initial schema: sources, items, fetch_log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-numbers an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
BIG_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("configured", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("next_check_at", UTC_TIME, nullable=True),
        sa.Column("claimed_until", UTC_TIME, nullable=True),
        sa.Column("last_attempt_at", UTC_TIME, nullable=True),
        sa.Column("last_success_at", UTC_TIME, nullable=True),
        sa.Column("last_new_item_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("redirected_to", sa.Text(), nullable=True),
        sa.Column("publish_interval", sa.Float(), nullable=True),
        sa.Column("item_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
    )
    op.create_index("ix_sources_next_check_at", "sources", ["next_check_at"])

    op.create_table(
        "items",
        sa.Column("pk", BIG_PK, autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("entry_id", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("published", UTC_TIME, nullable=False),
        sa.Column("published_given", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated", UTC_TIME, nullable=True),
        sa.Column("categories", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("first_seen", UTC_TIME, nullable=False),
        sa.Column("last_changed", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name="fk_items_source_id_sources"),
        sa.PrimaryKeyConstraint("pk", name="pk_items"),
        sa.UniqueConstraint("source_id", "entry_id", name="uq_items_source_id_entry_id"),
    )
    op.create_index("ix_items_newest", "items", ["published", "first_seen", "pk"])
    op.create_index(
        "ix_items_source_newest", "items", ["source_id", "published", "first_seen", "pk"]
    )
    op.create_index("ix_items_last_changed", "items", ["last_changed"])

    op.create_table(
        "fetch_log",
        sa.Column("pk", BIG_PK, autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("new_items", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_items", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_fetch_log_source_id_sources"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_fetch_log"),
    )
    op.create_index("ix_fetch_log_source_id_started_at", "fetch_log", ["source_id", "started_at"])
    op.create_index("ix_fetch_log_started_at", "fetch_log", ["started_at"])


def downgrade() -> None:
    op.drop_table("fetch_log")
    op.drop_table("items")
    op.drop_table("sources")
