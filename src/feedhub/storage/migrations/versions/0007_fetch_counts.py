"""Fetch counts per source and outcome, kept on the source row.

``/metrics`` used to count the fetch log at every scrape (a GROUP BY over every line ever
logged), which also meant the log could never be pruned without the counters going backwards.
Each poll now adds one to its source's counter in the statement that saves the source's state;
this revision adds the counters and fills them from the log as it stands.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("fetches_ok", "fetches_not_modified", "fetches_error")
_OUTCOME = {
    "fetches_error": "error IS NOT NULL",
    "fetches_not_modified": "error IS NULL AND status = 304",
    "fetches_ok": "error IS NULL AND (status IS NULL OR status <> 304)",
}


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both databases (a batch would rebuild ``sources`` on
    # SQLite, which the rows that reference it forbid).
    for name in COUNTERS:
        op.add_column(
            "sources",
            sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        )
    for name, where in _OUTCOME.items():
        op.execute(
            f"UPDATE sources SET {name} = (SELECT count(*) FROM fetch_log "  # noqa: S608
            f"WHERE fetch_log.source_id = sources.id AND {where})"
        )


def downgrade() -> None:
    for name in COUNTERS:
        op.execute(f"ALTER TABLE sources DROP COLUMN {name}")  # SQLite 3.35 and later
