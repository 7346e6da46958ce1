"""Indexes for the reader pages: hot ranking and section counts without scanning items.

Item rows are long (the text comes before the story and section columns), so a query that
reads ``story_id``, ``first_seen`` or ``section_id`` off the table walks every row's overflow
pages. ``ix_items_story_seen`` covers what the hot ranking and the related-reading loader read
per story (and replaces ``ix_items_story_id``, its prefix); ``ix_stories_created_at`` finds the
stories of the hot window; ``ix_items_section_id`` counts items per section from the index;
``ix_stories_updated_at`` answers ``max(updated_at)`` in the data version (asked every second
a page or feed is requested) without reading every story.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_items_story_seen", "items", ["story_id", "first_seen", "source_id"])
    op.drop_index("ix_items_story_id", "items")
    op.create_index("ix_items_section_id", "items", ["section_id"])
    op.create_index("ix_stories_created_at", "stories", ["created_at"])
    op.create_index("ix_stories_updated_at", "stories", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_stories_updated_at", "stories")
    op.drop_index("ix_stories_created_at", "stories")
    op.drop_index("ix_items_section_id", "items")
    op.create_index("ix_items_story_id", "items", ["story_id"])
    op.drop_index("ix_items_story_seen", "items")
