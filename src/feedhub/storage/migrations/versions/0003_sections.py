"""Sections: each item is filed under a leaf section; trained section models are kept.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
_ITEM_COLUMNS = ("section_id", "section_pin", "section_key", "section_detail")


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        for name in _ITEM_COLUMNS:
            batch.add_column(sa.Column(name, sa.Text(), nullable=True))
        batch.add_column(sa.Column("section_at", UTC_TIME, nullable=True))
    op.create_index("ix_items_section_key", "items", ["section_key"])
    op.create_index("ix_items_section_at", "items", ["section_at"])
    with op.batch_alter_table("stories") as batch:
        batch.add_column(sa.Column("section_id", sa.Text(), nullable=True))
    op.create_index("ix_stories_section_published", "stories", ["section_id", "published", "id"])
    op.create_table(
        "section_models",
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_section_models"),
    )
    op.create_index("ix_section_models_created_at", "section_models", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_section_models_created_at", "section_models")
    op.drop_table("section_models")
    op.drop_index("ix_stories_section_published", "stories")
    with op.batch_alter_table("stories") as batch:
        batch.drop_column("section_id")
    op.drop_index("ix_items_section_at", "items")
    op.drop_index("ix_items_section_key", "items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("section_at")
        for name in reversed(_ITEM_COLUMNS):
            batch.drop_column(name)
