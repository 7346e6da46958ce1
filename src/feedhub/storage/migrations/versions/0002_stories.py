"""Stories: items join stories; each item keeps its public key and fingerprint.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def _key(source_id: str, entry_id: str) -> str:
    # Frozen copy of feedhub.models.item_key as it was at this revision.
    return hashlib.sha1(f"{source_id}\n{entry_id}".encode()).hexdigest()[:20]


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("published", UTC_TIME, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("member_count", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stories"),
    )
    op.create_index("ix_stories_published", "stories", ["published", "id"])
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("item_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("story_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("fingerprint", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("match_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("match_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("match_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("match_title_sim", sa.Float(), nullable=True))
        batch.add_column(sa.Column("match_text_sim", sa.Float(), nullable=True))
    conn = op.get_bind()
    items = sa.table(
        "items",
        sa.column("pk"),
        sa.column("source_id"),
        sa.column("entry_id"),
        sa.column("item_key"),
    )
    rows = conn.execute(sa.select(items.c.pk, items.c.source_id, items.c.entry_id)).all()
    if rows:
        conn.execute(
            items.update()
            .where(items.c.pk == sa.bindparam("p_pk"))
            .values(item_key=sa.bindparam("p_key")),
            [{"p_pk": pk, "p_key": _key(sid, eid)} for pk, sid, eid in rows],
        )
    with op.batch_alter_table("items") as batch:
        batch.alter_column("item_key", existing_type=sa.Text(), nullable=False)
    op.create_index("ix_items_item_key", "items", ["item_key"], unique=True)
    op.create_index("ix_items_story_id", "items", ["story_id"])


def downgrade() -> None:
    op.drop_index("ix_items_story_id", "items")
    op.drop_index("ix_items_item_key", "items")
    with op.batch_alter_table("items") as batch:
        for name in (
            "match_text_sim",
            "match_title_sim",
            "match_score",
            "match_key",
            "match_reason",
            "fingerprint",
            "story_id",
            "item_key",
        ):
            batch.drop_column(name)
    op.drop_index("ix_stories_published", "stories")
    op.drop_table("stories")
