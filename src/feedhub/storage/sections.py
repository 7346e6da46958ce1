"""Section queries: the filing queue, filings, pins, training items and stored models.

Plain functions over a Connection; ``SqlStorage`` wraps each in its transaction and error guard.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from feedhub.models import (
    Filing,
    FilingTask,
    ItemFiling,
    ModelRecord,
    StoredItem,
    TrainingExample,
)
from feedhub.storage.rows import stored_item, stored_item_columns
from feedhub.storage.schema import UTCDateTime, items, section_models, stories

KEEP_MODELS = 3

_FILE = (
    update(items)
    .where(items.c.pk == bindparam("p_pk"))
    .values(
        section_id=bindparam("p_section"),
        section_key=bindparam("p_key"),
        section_detail=bindparam("p_detail"),
        section_at=bindparam("p_now", type_=UTCDateTime),
    )
)
_STORY_SECTION = (
    update(stories)
    .where(
        stories.c.id == bindparam("p_item"), stories.c.section_id.is_distinct_from(bindparam("p_s"))
    )
    .values(section_id=bindparam("p_s"), related_at=None)
)


# What filing reads of an item: the stored item and the pin.
_TO_FILE = stored_item_columns("pk", "section_pin")


def to_file(
    conn: Connection,
    filing_key: str,
    cutoff: datetime,
    valid: Collection[str],
    limit: int,
    *,
    unfiled_only: bool,
) -> list[FilingTask]:
    """Items never filed, and, unless ``unfiled_only``, items filed under another filing key
    that were published or first seen since ``cutoff`` or sit in a section not in ``valid``.
    Newest first."""
    cond: ColumnElement[bool] = items.c.section_key.is_(None)
    if not unfiled_only:
        stale = and_(
            items.c.section_key != filing_key,
            or_(
                items.c.published >= cutoff,
                items.c.first_seen >= cutoff,
                items.c.section_id.is_(None),
                items.c.section_id.not_in(sorted(valid)),
            ),
        )
        cond = or_(cond, stale)
    stmt = select(*_TO_FILE).where(cond).order_by(items.c.pk.desc()).limit(limit)
    return [FilingTask(r.pk, stored_item(r), r.section_pin) for r in conn.execute(stmt)]


def file(conn: Connection, filings: Sequence[Filing], now: datetime) -> int:
    """Apply filings; a story founded by a filed item takes its section."""
    if not filings:
        return 0
    conn.execute(
        _FILE,
        [
            {
                "p_pk": f.pk,
                "p_section": f.section_id,
                "p_key": f.filing_key,
                "p_detail": f.detail,
                "p_now": now,
            }
            for f in filings
        ],
    )
    conn.execute(_STORY_SECTION, [{"p_item": f.key, "p_s": f.section_id} for f in filings])
    return len(filings)


def pin(conn: Connection, item_key: str, section_id: str | None) -> bool:
    result = conn.execute(
        update(items)
        .where(items.c.item_key == item_key)
        .values(section_pin=section_id, section_key=None)
    )
    return bool(result.rowcount)


def item_filing(conn: Connection, ident: str) -> ItemFiling | None:
    row = conn.execute(select(items).where(items.c.item_key == ident)).first()
    if row is None:
        return None
    return ItemFiling(
        stored_item(row),
        row.story_id,
        row.section_id,
        row.section_pin,
        row.section_key,
        row.section_detail,
        row.section_at,
    )


def training(
    conn: Connection, channels: Mapping[str, Collection[str]], per_section: int
) -> list[TrainingExample]:
    """The newest ``per_section`` items of each section's channel sources (items pinned
    elsewhere excluded), then every pinned item (newest ``per_section`` per pin)."""
    out: list[TrainingExample] = []
    for section, source_ids in channels.items():
        if not source_ids:
            continue
        stmt = (
            select(items)
            .where(items.c.source_id.in_(sorted(source_ids)), items.c.section_pin.is_(None))
            .order_by(items.c.published.desc(), items.c.pk.desc())
            .limit(per_section)
        )
        out += [TrainingExample(stored_item(r), section) for r in conn.execute(stmt)]
    pinned = (
        select(items)
        .where(items.c.section_pin.is_not(None))
        .order_by(items.c.published.desc(), items.c.pk.desc())
    )
    taken: dict[str, int] = {}
    for r in conn.execute(pinned):
        n = taken.get(r.section_pin, 0)
        if n < per_section:
            taken[r.section_pin] = n + 1
            out.append(TrainingExample(stored_item(r), r.section_pin, pinned=True))
    return out


def unlabeled(conn: Connection, exclude_sources: Collection[str], limit: int) -> list[StoredItem]:
    stmt = select(items).order_by(items.c.published.desc(), items.c.pk.desc()).limit(limit)
    if exclude_sources:
        stmt = stmt.where(items.c.source_id.not_in(sorted(exclude_sources)))
    return [stored_item(r) for r in conn.execute(stmt)]


def save_model(conn: Connection, record: ModelRecord) -> None:
    """Store a model as the newest; keep the last few (``explain`` may name an older one)."""
    conn.execute(delete(section_models).where(section_models.c.version == record.version))
    conn.execute(
        insert(section_models).values(
            version=record.version,
            created_at=record.created_at,
            examples=record.examples,
            info=record.info,
            data=record.data,
        )
    )
    old = conn.execute(
        select(section_models.c.version)
        .order_by(section_models.c.created_at.desc(), section_models.c.version)
        .offset(KEEP_MODELS)
    ).scalars()
    stale = list(old)
    if stale:
        conn.execute(delete(section_models).where(section_models.c.version.in_(stale)))


def latest_model(conn: Connection, *, with_data: bool = True) -> ModelRecord | None:
    cols = [
        section_models.c.version,
        section_models.c.created_at,
        section_models.c.examples,
        section_models.c.info,
    ]
    if with_data:
        cols.append(section_models.c.data)
    row = conn.execute(select(*cols).order_by(section_models.c.created_at.desc()).limit(1)).first()
    if row is None:
        return None
    data = bytes(row.data) if with_data else b""
    return ModelRecord(row.version, row.created_at, row.examples, row.info, data)


def section_counts(conn: Connection) -> tuple[dict[str | None, int], dict[str | None, int]]:
    """Items and stories per section (None: not filed)."""
    item_counts = {
        sid: int(n)
        for sid, n in conn.execute(
            select(items.c.section_id, func.count()).group_by(items.c.section_id)
        )
    }
    return item_counts, story_counts(conn)


def story_counts(conn: Connection) -> dict[str | None, int]:
    """Stories per section (None: not filed), counted from the section index."""
    stmt = select(stories.c.section_id, func.count()).group_by(stories.c.section_id)
    return {sid: int(n) for sid, n in conn.execute(stmt)}
