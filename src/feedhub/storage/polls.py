"""Sources and polls on one connection: syncing the configured sources, claiming due ones,
and recording a poll (state, items, fetch-log line and counters) in the caller's transaction.
``SqlStorage`` wraps each in a transaction and turns errors into ``StorageError``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    Update,
    bindparam,
    func,
    or_,
    select,
    true,
    update,
)

from feedhub.errors import StorageError
from feedhub.models import FetchLogEntry, Item, SourceSpec, SourceState, StoreOutcome
from feedhub.storage import stories as story_queries
from feedhub.storage.base import Placer
from feedhub.storage.rows import ITEM_FIELDS, STATE_FIELDS, ItemInsert, item_change, log_row
from feedhub.storage.schema import UTCDateTime, fetch_log, items, sources

IN_CHUNK = 500  # entry ids per IN (...) lookup; far below every backend's parameter limit

# Statements built once: executing a prebuilt construct skips rebuilding it on every poll.
# Each poll adds one to its outcome's counter (``counted``) where its state is saved.
COUNTERS = {
    name: getattr(sources.c, name) + bindparam(f"p_{name}", type_=Integer)
    for name in ("fetches_ok", "fetches_not_modified", "fetches_error")
}
SAVE_STATE = (
    update(sources)
    .where(sources.c.id == bindparam("p_id"), sources.c.url == bindparam("p_url"))
    .values(
        {name: bindparam(f"p_{name}") for name in STATE_FIELDS} | {"claimed_until": None} | COUNTERS
    )
)
RELEASE_ONE = update(sources).where(sources.c.id == bindparam("p_id")).values(claimed_until=None)
RELEASE_POLLED = RELEASE_ONE.values(COUNTERS)
COUNT_NEW = (
    update(sources)
    .where(sources.c.id == bindparam("p_id"))
    .values(
        item_count=sources.c.item_count + bindparam("p_new", type_=Integer),
        last_new_item_at=bindparam("p_now", type_=UTCDateTime),
    )
)
EXISTING = select(items.c.entry_id, items.c.content_hash).where(
    items.c.source_id == bindparam("p_source"),
    items.c.entry_id.in_(bindparam("p_entries", expanding=True)),
)
MAX_PK = select(func.max(items.c.pk))
UPDATE_ITEM = (
    update(items)
    .where(items.c.source_id == bindparam("p_source"), items.c.entry_id == bindparam("p_entry"))
    .values(
        {name: bindparam(f"p_{name}") for name in ITEM_FIELDS}
        | {
            "categories": bindparam("p_categories"),
            "last_changed": bindparam("p_now", type_=UTCDateTime),
            "section_key": None,  # changed content is filed again
            "search_at": None,  # and indexed for search again
            # A feed that stops giving a date keeps the one it gave before (or first_seen).
            "published": func.coalesce(
                bindparam("p_published", type_=UTCDateTime), items.c.published
            ),
            "published_given": or_(items.c.published_given, bindparam("p_given", type_=Boolean)),
        }
    )
)
INSERT_LOG = fetch_log.insert()
MOVE_SOURCE = (
    update(sources)
    .where(sources.c.id == bindparam("p_id"))
    .values(
        url=bindparam("p_url"),
        configured=True,
        etag=None,
        last_modified=None,
        redirected_to=None,
        disabled_reason=None,
        error_count=0,
        next_check_at=bindparam("p_now", type_=UTCDateTime),
    )
)
CONFIGURE = update(sources).where(sources.c.id == bindparam("p_id")).values(configured=True)
UNCONFIGURE = update(sources).where(sources.c.id == bindparam("p_id")).values(configured=False)


@functools.cache
def claim_statement(pg: bool, ignore_schedule: bool, filtered: bool) -> Update:
    """The claiming UPDATE, built once per variant: building it costs more than running it."""
    now = bindparam("p_now", type_=UTCDateTime)
    due = sources.alias("due")
    conditions = [
        due.c.configured == true(),
        due.c.disabled_reason.is_(None),
        or_(due.c.claimed_until.is_(None), due.c.claimed_until <= now),
    ]
    if not ignore_schedule:
        conditions.append(or_(due.c.next_check_at.is_(None), due.c.next_check_at <= now))
    if filtered:
        conditions.append(due.c.id.in_(bindparam("p_ids", expanding=True)))
    pick = (
        select(due.c.id)
        .where(*conditions)
        .order_by(due.c.next_check_at.asc().nulls_first(), due.c.id)
        .limit(bindparam("p_limit", type_=Integer))
    )
    if pg:
        # Rows another poller is claiming right now are skipped, not waited for.
        pick = pick.with_for_update(skip_locked=True)
    # On SQLite the write transaction (BEGIN IMMEDIATE) already excludes other claimers.
    return (
        update(sources)
        .where(sources.c.id.in_(pick))
        .values(claimed_until=bindparam("p_until", type_=UTCDateTime))
        .returning(*sources.c)
    )


NOTHING = StoreOutcome(0, 0, 0)


def checked(state: SourceState, items: Sequence[Item], log: FetchLogEntry) -> dict[str, Item]:
    """The poll's items by entry id (a feed listing one entry twice: the last one wins); an
    item or log line of another source is a caller bug."""
    sid = state.source_id
    batch: dict[str, Item] = {}
    for item in items:
        if item.source_id != sid:
            raise ValueError(f"record_poll of {sid!r} got an item of {item.source_id!r}")
        batch[item.entry_id] = item
    if log.source_id != sid:
        raise ValueError(f"record_poll of {sid!r} got a log line of {log.source_id!r}")
    return batch


def state_params(state: SourceState, log: FetchLogEntry) -> dict[str, Any]:
    params: dict[str, Any] = {f"p_{name}": getattr(state, name) for name in STATE_FIELDS}
    params["p_id"] = state.source_id
    params["p_url"] = state.url
    return counted(params, log)


def counted(params: dict[str, Any], log: FetchLogEntry) -> dict[str, Any]:
    """``params`` with the counter increments of the poll that ``log`` records."""
    outcome = "error" if log.error is not None else "not_modified" if log.status == 304 else "ok"
    for name in ("ok", "not_modified", "error"):
        params[f"p_fetches_{name}"] = int(name == outcome)
    return params


def sync(conn: Connection, specs: Sequence[SourceSpec], now: datetime) -> None:
    """Add new sources, move changed URLs, mark sources in and out of the config."""
    # Sorted, so that concurrent syncs lock rows in the same order and cannot deadlock.
    wanted = {spec.source_id: spec.url for spec in sorted(specs, key=lambda s: s.source_id)}
    rows = conn.execute(select(sources.c.id, sources.c.url, sources.c.configured)).all()
    have = {row.id: row for row in sorted(rows, key=lambda r: str(r.id))}
    new = [
        {"id": sid, "url": url, "configured": True, "next_check_at": now}
        for sid, url in wanted.items()
        if sid not in have
    ]
    moved = [
        {"p_id": sid, "p_url": url, "p_now": now}
        for sid, url in wanted.items()
        if sid in have and have[sid].url != url
    ]
    back = [
        {"p_id": sid}
        for sid, url in wanted.items()
        if sid in have and have[sid].url == url and not have[sid].configured
    ]
    gone = [{"p_id": sid} for sid, row in have.items() if row.configured and sid not in wanted]
    if new:
        conn.execute(sources.insert(), new)
    if moved:
        conn.execute(MOVE_SOURCE, moved)
    if back:
        conn.execute(CONFIGURE, back)
    if gone:
        conn.execute(UNCONFIGURE, gone)


def save_states(conn: Connection, polls: Sequence[tuple[SourceState, FetchLogEntry]]) -> bool:
    """Save several states with one statement; False (and nothing to undo: the same values
    are written again one by one) when a source moved or is missing."""
    # In id order, like every other multi-row write, so that row locks are taken in order.
    ordered = sorted(polls, key=lambda poll: poll[0].source_id)
    rows = [state_params(state, log) for state, log in ordered]
    return int(conn.execute(SAVE_STATE, rows).rowcount) == len(rows)


def record(
    conn: Connection,
    insert_items: ItemInsert,
    state: SourceState,
    batch: dict[str, Item],
    log: FetchLogEntry,
    now: datetime,
    placer: Placer | None = None,
) -> StoreOutcome:
    """One poll: its source's state and counters, its items (placed in stories by ``placer``,
    if given), its fetch-log line."""
    sid = state.source_id
    # Saving the state first also takes the row lock that orders concurrent polls.
    saved = conn.execute(SAVE_STATE, state_params(state, log))
    if saved.rowcount == 0:
        # The config moved this source to another URL while it was being polled: keep
        # the items, but not validators or a schedule that belong to the old URL.
        if conn.execute(RELEASE_POLLED, counted({"p_id": sid}, log)).rowcount == 0:
            raise StorageError(f"record_poll of source {sid!r}: no such source")
    outcome = upsert(conn, insert_items, sid, batch, now, placer) if batch else NOTHING
    if outcome.new:
        conn.execute(COUNT_NEW, {"p_id": sid, "p_new": outcome.new, "p_now": now})
    conn.execute(INSERT_LOG, log_row(log, outcome))
    return outcome


def upsert(
    conn: Connection,
    insert_items: ItemInsert,
    sid: str,
    batch: dict[str, Item],
    now: datetime,
    placer: Placer | None = None,
) -> StoreOutcome:
    """Insert new items, update changed ones (by content hash), leave the rest. With a
    ``placer``, new items go in already placed in their stories."""
    entry_ids = list(batch)
    known: dict[str, str] = {}
    for start in range(0, len(entry_ids), IN_CHUNK):
        chunk = entry_ids[start : start + IN_CHUNK]
        for entry_id, digest in conn.execute(EXISTING, {"p_source": sid, "p_entries": chunk}):
            known[entry_id] = digest
    fresh = [item for eid, item in batch.items() if eid not in known]
    changed = [
        item_change(item, now)
        for eid, item in batch.items()
        if eid in known and known[eid] != item.content_hash
    ]
    if fresh and placer is not None:
        placements = placer.place(fresh)
        story_queries.open_placed(conn, placements, now)
        before = conn.execute(MAX_PK).scalar()
        insert_items(conn, fresh, now, placements)
        placer.stored(before, conn.execute(MAX_PK).scalar())
    elif fresh:
        insert_items(conn, fresh, now)
    if changed:
        conn.execute(UPDATE_ITEM, changed)
    return StoreOutcome(len(fresh), len(changed), len(batch) - len(fresh) - len(changed))
