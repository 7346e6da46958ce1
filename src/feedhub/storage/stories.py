"""Story queries: pending items, the clusterer's window, assignments, and stories for feeds.

Plain functions over a Connection; ``SqlStorage`` wraps each in its transaction and error guard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, Row, and_, bindparam, exists, func, select, update

from feedhub.models import (
    PendingItem,
    Story,
    StoryAssignment,
    StoryLink,
    StoryMember,
    StoryPlacement,
    WindowEntry,
)
from feedhub.storage.rows import stored_item, stored_item_columns, story_insert
from feedhub.storage.schema import UTCDateTime, items, stories

_ASSIGN = (
    update(items)
    .where(items.c.pk == bindparam("p_pk"), items.c.story_id.is_(None))
    .values(
        story_id=bindparam("p_story"),
        fingerprint=bindparam("p_fingerprint"),
        match_reason=bindparam("p_reason"),
        match_key=bindparam("p_key"),
        match_score=bindparam("p_score"),
        match_title_sim=bindparam("p_title"),
        match_text_sim=bindparam("p_text"),
    )
)
_JOINED = (
    update(stories)
    .where(stories.c.id == bindparam("p_story"))
    .values(
        member_count=stories.c.member_count + bindparam("p_n", type_=Integer),
        updated_at=bindparam("p_now", type_=UTCDateTime),
        related_at=None,  # a new source changes what the story is related to
    )
)


_FOUNDER_SECTION = (
    select(items.c.section_id).where(items.c.item_key == stories.c.id).scalar_subquery()
)


def pending(conn: Connection, limit: int) -> list[PendingItem]:
    stmt = (
        select(*stored_item_columns("pk", "fingerprint"))
        .where(items.c.story_id.is_(None))
        .order_by(items.c.pk)
        .limit(limit)
    )
    return [
        PendingItem(row.pk, stored_item(row), bytes(row.fingerprint) if row.fingerprint else None)
        for row in conn.execute(stmt)
    ]


def window(conn: Connection, after_pk: int, since: datetime) -> list[WindowEntry]:
    stmt = (
        select(
            items.c.pk,
            items.c.item_key,
            items.c.source_id,
            items.c.story_id,
            items.c.fingerprint,
            items.c.published,
        )
        .where(
            items.c.pk > after_pk,
            items.c.first_seen >= since,
            items.c.story_id.is_not(None),
            items.c.fingerprint.is_not(None),
        )
        .order_by(items.c.pk)
    )
    return [
        WindowEntry(r.pk, r.item_key, r.source_id, r.story_id, bytes(r.fingerprint), r.published)
        for r in conn.execute(stmt)
    ]


def assign(conn: Connection, assignments: Sequence[StoryAssignment], now: datetime) -> int:
    """Apply verdicts in a few statements; an item another clusterer placed meanwhile is left
    as it is (and counts for nothing)."""
    if not assignments:
        return 0
    pks = [a.item_pk for a in assignments]
    open_pks: set[int] = set()
    for start in range(0, len(pks), 500):
        chunk = pks[start : start + 500]
        open_pks.update(
            conn.execute(
                select(items.c.pk).where(items.c.pk.in_(chunk), items.c.story_id.is_(None))
            ).scalars()
        )
    todo = [a for a in assignments if a.item_pk in open_pks]
    if not todo:
        return 0
    founders = [a for a in todo if a.new_story]
    _found(conn, [(a.story_id, a.published) for a in founders], now)
    conn.execute(
        _ASSIGN,
        [
            {
                "p_pk": a.item_pk,
                "p_story": a.story_id,
                "p_fingerprint": a.fingerprint,
                "p_reason": a.link.reason,
                "p_key": a.link.matched_key,
                "p_score": a.link.score,
                "p_title": a.link.title_similarity,
                "p_text": a.link.text_similarity,
            }
            for a in todo
        ],
    )
    if founders:  # a founder filed before it was clustered gives the story its section
        ids = [a.story_id for a in founders]
        for start in range(0, len(ids), 500):
            conn.execute(
                update(stories)
                .where(stories.c.id.in_(ids[start : start + 500]))
                .values(section_id=_FOUNDER_SECTION)
            )
    _join(conn, Counter(a.story_id for a in todo if not a.new_story), now)
    return len(todo)


def open_placed(conn: Connection, placements: Mapping[str, StoryPlacement], now: datetime) -> None:
    """The story rows for items about to be inserted already placed: the stories they found,
    and the member counts of those they join (founders first: an item may join a story that
    another item of the same poll founds)."""
    placed = placements.values()
    _found(conn, [(p.story_id, p.published) for p in placed if p.new_story], now)
    _join(conn, Counter(p.story_id for p in placed if not p.new_story), now)


def _found(conn: Connection, founders: Sequence[tuple[str, datetime]], now: datetime) -> None:
    if founders:
        story_insert(conn.dialect)(conn, founders, now)


def _join(conn: Connection, joins: Counter[str], now: datetime) -> None:
    if joins:
        conn.execute(
            _JOINED, [{"p_story": sid, "p_n": n, "p_now": now} for sid, n in joins.items()]
        )


def _link(row: Row[Any]) -> StoryLink:
    return StoryLink(
        row.match_reason, row.match_key, row.match_score, row.match_title_sim, row.match_text_sim
    )


def load(conn: Connection, story_rows: Sequence[Row[Any]]) -> list[Story]:
    ids = [row.id for row in story_rows]
    if not ids:
        return []
    members: dict[str, list[StoryMember]] = {sid: [] for sid in ids}
    stmt = select(items).where(items.c.story_id.in_(ids)).order_by(items.c.first_seen, items.c.pk)
    for row in conn.execute(stmt):
        members[row.story_id].append(StoryMember(stored_item(row), _link(row)))
    return [
        Story(r.id, r.published, r.created_at, r.updated_at, tuple(members[r.id]), r.section_id)
        for r in story_rows
        if members[r.id]
    ]


def list_stories(
    conn: Connection,
    source_ids: Collection[str] | None,
    limit: int,
    offset: int = 0,
    *,
    min_members: int = 1,
    by_update: bool = False,
    section_ids: Collection[str] | None = None,
) -> list[Story]:
    stmt = select(stories)
    if section_ids is not None:
        if not section_ids:
            return []
        stmt = stmt.where(stories.c.section_id.in_(sorted(section_ids)))
    if source_ids is not None:
        if not source_ids:
            return []
        carried = exists().where(
            and_(items.c.story_id == stories.c.id, items.c.source_id.in_(list(source_ids)))
        )
        stmt = stmt.where(carried)
    if min_members > 1:
        stmt = stmt.where(stories.c.member_count >= min_members)
    order = stories.c.updated_at if by_update else stories.c.published
    stmt = stmt.order_by(order.desc(), stories.c.id.desc()).limit(limit).offset(offset)
    return load(conn, conn.execute(stmt).all())


def get_story(conn: Connection, ident: str) -> Story | None:
    """By story id, or by the key of any member item."""
    row = conn.execute(select(stories).where(stories.c.id == ident)).first()
    if row is None:
        story_id = conn.execute(
            select(items.c.story_id).where(items.c.item_key == ident)
        ).scalar_one_or_none()
        if story_id is None:
            return None
        row = conn.execute(select(stories).where(stories.c.id == story_id)).first()
    found = load(conn, [row]) if row is not None else []
    return found[0] if found else None


def latest_story_change(conn: Connection) -> datetime | None:
    value: datetime | None = conn.execute(select(func.max(stories.c.updated_at))).scalar_one()
    return value
