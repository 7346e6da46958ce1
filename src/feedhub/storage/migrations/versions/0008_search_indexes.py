"""Two narrow indexes for search on SQLite: item pk -> story, story id -> published.

A search maps every matching item to its story and every story to its time. Item rows are
large (two or three to a page), so on SQLite each of those lookups read a page of its own:
most of a broad search's time. ``storage.related.search_ids`` names these indexes (SQLite's
planner does not pick them by itself). PostgreSQL gets them too, so that both databases have
one schema; its planner uses them where they help.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_items_pk_story", "items", ["pk", "story_id"])
    op.create_index("ix_stories_id_published", "stories", ["id", "published"])


def downgrade() -> None:
    op.drop_index("ix_stories_id_published", "stories")
    op.drop_index("ix_items_pk_story", "items")
