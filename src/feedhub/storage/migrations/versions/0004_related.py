"""Related reading: each story's list, and which stories need theirs (re)computed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("stories") as batch:
        batch.add_column(sa.Column("related_at", UTC_TIME, nullable=True))
    op.create_index("ix_stories_related_at", "stories", ["related_at"])
    op.create_table(
        "story_related",
        sa.Column("story_id", sa.Text(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("related_id", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("story_id", "rank", name="pk_story_related"),
    )


def downgrade() -> None:
    op.drop_table("story_related")
    op.drop_index("ix_stories_related_at", "stories")
    with op.batch_alter_table("stories") as batch:
        batch.drop_column("related_at")
