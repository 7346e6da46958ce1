"""Reads for the reader pages: story cards, newest-first lists and section counts, read narrowly.

A card shows a story's id, time and section and, per member item, its source, link, title,
time and the start of its text. ``Story`` values carry every column of every member item,
the full-text terms included (most of an item row's bytes), and loading one list of them per
page box is most of a page's time with 100,000 stories stored. These queries read only what a
card shows, answer the home page's per-section lists in one statement, walk the section index
for a section's page, and count sections from that index.

Plain functions over a Connection, like the other query modules; ``SqlPageReads`` runs them
on a ``SqlStorage``'s connections under its error guard (it uses the storage's private
``_read``: these are that storage's queries, kept apart from ``sql.py`` by subject).
``StorageReads`` gives the same answers through the ``Storage`` protocol alone.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Integer, bindparam, case, func, literal, select, union_all

from feedhub.models import Story
from feedhub.storage.base import Storage
from feedhub.storage.related import search_ids
from feedhub.storage.schema import items, stories, story_related
from feedhub.storage.sql import SqlStorage

__all__ = [
    "TEXT_CHARS",
    "CardMember",
    "CardStory",
    "PageReads",
    "SqlPageReads",
    "StorageReads",
    "card_stories",
    "card_story",
    "newest_ids",
    "newest_in_groups",
    "page_reads",
    "related_ids",
    "section_story_counts",
]

TEXT_CHARS = 2000  # of a member's summary (or content): what an excerpt is made from
_CHUNK = 500
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class CardMember:
    """One member item as a card uses it. ``text`` is the first ``TEXT_CHARS`` characters of
    its summary, or of its content when it has no summary (HTML, possibly cut in a tag)."""

    source_id: str
    link: str | None
    title: str
    published: datetime
    section_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class CardStory:
    """A story as a card uses it; members in the order they joined (first seen, then pk)."""

    id: str
    published: datetime
    section_id: str | None
    members: tuple[CardMember, ...]


def card_story(story: Story) -> CardStory:
    """The card data of a fully loaded story (the same values the card query reads)."""
    return CardStory(
        story.id,
        story.published,
        story.section_id,
        tuple(
            CardMember(
                m.stored.item.source_id,
                m.stored.item.link,
                m.stored.item.title,
                m.stored.published,
                m.stored.section_id,
                (m.stored.item.summary or m.stored.item.content or "")[:TEXT_CHARS],
            )
            for m in story.members
        ),
    )


# The summary, or the content when the summary is missing or empty, cut in SQL: the rest of a
# long body is never sent (``substr`` counts characters on both backends, as Python slices).
_TEXT = case(
    (func.coalesce(items.c.summary, "") != "", func.substr(items.c.summary, 1, TEXT_CHARS)),
    else_=func.coalesce(func.substr(items.c.content, 1, TEXT_CHARS), ""),
)
# Statements are built once (per set of sections) with their values bound at execution:
# building and keying a statement of a dozen subqueries costs ten times what running it does.
_LIMIT = bindparam("p_limit", type_=Integer)
_OFFSET = bindparam("p_offset", type_=Integer)
_DEPTH = bindparam("p_depth", type_=Integer)  # how far each section's walk goes
_CARDS = (
    select(
        stories.c.id,
        stories.c.published,
        stories.c.section_id,
        items.c.source_id,
        items.c.link,
        items.c.title,
        items.c.published.label("item_published"),
        items.c.section_id.label("item_section_id"),
        _TEXT.label("text"),
    )
    .join(items, items.c.story_id == stories.c.id)
    .where(stories.c.id.in_(bindparam("p_ids", expanding=True)))
    .order_by(items.c.first_seen, items.c.pk)
)


def card_stories(conn: Connection, ids: Sequence[str]) -> list[CardStory]:
    """Stories in the order of ``ids``; unknown ids (and stories without members) left out."""
    heads: dict[str, tuple[datetime, str | None]] = {}
    members: dict[str, list[CardMember]] = {}
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), _CHUNK):
        rows = conn.execute(_CARDS, {"p_ids": wanted[start : start + _CHUNK]})
        for sid, published, section, *member in rows:  # members: CardMember's fields
            if sid not in heads:
                heads[sid] = (published, section)
                members[sid] = []
            members[sid].append(CardMember(*member))
    return [CardStory(sid, *heads[sid], tuple(members[sid])) for sid in ids if sid in heads]


_NEWEST = (stories.c.published.desc(), stories.c.id.desc())
_ALL_NEWEST = select(stories.c.id).order_by(*_NEWEST).limit(_LIMIT).offset(_OFFSET)
_SECTION_NEWEST = (
    select(stories.c.id)
    .where(stories.c.section_id == bindparam("p_section"))
    .order_by(*_NEWEST)
    .limit(_LIMIT)
    .offset(_OFFSET)
)


@functools.lru_cache(maxsize=64)
def _merged(section_ids: tuple[str, ...], everything: bool) -> Any:
    """The newest ``p_depth`` stories of each section (tagged 1, 2, ... in order) and, with
    ``everything``, of all stories (tagged 0), newest first. Each section is read backwards
    off ``ix_stories_section_published``, so nothing is sorted but the few rows found."""
    arms = []
    for tag, section_id in enumerate(section_ids, start=1):
        inner = (
            select(stories.c.id, stories.c.published)
            .where(stories.c.section_id == section_id)
            .order_by(*_NEWEST)
            .limit(_DEPTH)
            .subquery()
        )
        arms.append(select(inner.c.id, inner.c.published, literal(tag, Integer).label("tag")))
    if everything:
        walk = select(stories.c.id, stories.c.published).order_by(*_NEWEST).limit(_DEPTH)
        every = walk.subquery()
        arms.append(select(every.c.id, every.c.published, literal(0, Integer).label("tag")))
    merged = union_all(*arms).subquery()
    return select(merged.c.id, merged.c.tag).order_by(
        merged.c.published.desc(), merged.c.id.desc(), merged.c.tag
    )


@functools.lru_cache(maxsize=64)
def _merged_page(section_ids: tuple[str, ...]) -> Any:
    return _merged(section_ids, False).limit(_LIMIT).offset(_OFFSET)


def newest_ids(
    conn: Connection, section_ids: Collection[str] | None, limit: int, offset: int = 0
) -> list[str]:
    """Ids of the newest stories (in these sections), as ``list_stories`` orders them.

    Several sections are one index walk each, merged (SQLite stops each range of an ``IN`` list
    early by itself; PostgreSQL may sort all their stories to find a few)."""
    if limit <= 0:
        return []
    params: dict[str, Any] = {"p_limit": limit, "p_offset": offset}
    if section_ids is None:
        return list(conn.execute(_ALL_NEWEST, params).scalars())
    wanted = tuple(sorted(set(section_ids)))
    if not wanted:
        return []
    if len(wanted) == 1:
        params["p_section"] = wanted[0]
        return list(conn.execute(_SECTION_NEWEST, params).scalars())
    params["p_depth"] = offset + limit
    return list(conn.execute(_merged_page(wanted), params).scalars())


def newest_in_groups(
    conn: Connection, groups: Mapping[K, Collection[str] | None], limit: int
) -> dict[K, list[str]]:
    """For each group (a set of sections, or None for all stories) the ids of its ``limit``
    newest stories, from one statement: one index walk per section, one for all stories."""
    sections = tuple(sorted({s for group in groups.values() if group is not None for s in group}))
    everything = any(group is None for group in groups.values())
    if limit <= 0 or not (sections or everything):
        return {key: [] for key in groups}
    tags = {sid: n for n, sid in enumerate(sections, start=1)}
    # newest first across all the walks
    rows = conn.execute(_merged(sections, everything), {"p_depth": limit}).all()
    out: dict[K, list[str]] = {}
    for key, group in groups.items():
        wanted = {0} if group is None else {tags[sid] for sid in group}
        picked: list[str] = []
        for story_id, tag in rows:
            if tag in wanted:
                picked.append(story_id)
                if len(picked) == limit:
                    break
        out[key] = picked
    return out


_RELATED = (
    select(story_related.c.related_id)
    .where(story_related.c.story_id == bindparam("p_story"))
    .order_by(story_related.c.rank)
)


def related_ids(conn: Connection, story_id: str) -> list[str]:
    """The story's related stories in rank order (``related.lists`` without their titles,
    which cards read anyway)."""
    return list(conn.execute(_RELATED, {"p_story": story_id}).scalars())


@functools.lru_cache(maxsize=64)
def _counts_statement(section_ids: tuple[str, ...]) -> Any:
    """Built once per set of sections (the home page's, and each section page's subtree)."""
    return select(
        *(
            select(func.count()).where(stories.c.section_id == sid).scalar_subquery()
            for sid in section_ids
        )
    )


def section_story_counts(conn: Connection, section_ids: Collection[str]) -> dict[str, int]:
    """Stories filed under each of these sections, in one statement.

    One ``count(*)`` per section, each a range of ``ix_stories_section_published``: cheaper
    than grouping the whole index (which compares every entry's section with the last)."""
    wanted = tuple(sorted(set(section_ids)))
    if not wanted:
        return {}
    row = conn.execute(_counts_statement(wanted)).one()
    return {sid: int(n) for sid, n in zip(wanted, row, strict=True)}


class PageReads(Protocol):
    """The reads behind the pages: ``SqlPageReads`` on the SQL storage, else ``StorageReads``
    through the ``Storage`` protocol (the same answers, with more work)."""

    def cards(self, ids: Sequence[str]) -> list[CardStory]: ...

    def newest(
        self, section_ids: Collection[str] | None, limit: int, offset: int = 0
    ) -> list[CardStory]: ...

    def newest_in_groups(
        self, groups: Mapping[K, Collection[str] | None], limit: int
    ) -> dict[K, list[CardStory]]: ...

    def related(self, story_id: str) -> list[CardStory]: ...

    def counts(self, section_ids: Collection[str]) -> dict[str, int]: ...

    def search(self, words: Sequence[str]) -> list[str]: ...


class SqlPageReads:
    """The queries above on a ``SqlStorage``: one pooled connection per call, errors wrapped
    in ``StorageError`` naming the operation, as the storage's own methods do."""

    def __init__(self, storage: SqlStorage) -> None:
        self._storage = storage

    def cards(self, ids: Sequence[str]) -> list[CardStory]:
        if not ids:
            return []
        with self._storage._read("page_cards") as conn:
            return card_stories(conn, ids)

    def newest(
        self, section_ids: Collection[str] | None, limit: int, offset: int = 0
    ) -> list[CardStory]:
        with self._storage._read("page_newest") as conn:
            return card_stories(conn, newest_ids(conn, section_ids, limit, offset))

    def newest_in_groups(
        self, groups: Mapping[K, Collection[str] | None], limit: int
    ) -> dict[K, list[CardStory]]:
        with self._storage._read("page_newest_groups") as conn:
            ids = newest_in_groups(conn, groups, limit)
            cards = {c.id: c for c in card_stories(conn, [i for v in ids.values() for i in v])}
        return {key: [cards[i] for i in found if i in cards] for key, found in ids.items()}

    def related(self, story_id: str) -> list[CardStory]:
        with self._storage._read("page_related") as conn:
            return card_stories(conn, related_ids(conn, story_id))

    def counts(self, section_ids: Collection[str]) -> dict[str, int]:
        with self._storage._read("page_counts") as conn:
            return section_story_counts(conn, section_ids)

    def search(self, words: Sequence[str]) -> list[str]:
        """Every matching story id, newest first (see ``related.search_ids``)."""
        with self._storage._read("page_search") as conn:
            return search_ids(conn, words)


class StorageReads:
    """``PageReads`` through any ``Storage``: full stories loaded and cut down to cards."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def cards(self, ids: Sequence[str]) -> list[CardStory]:
        return [card_story(s) for s in self.storage.stories_by_ids(ids)] if ids else []

    def newest(
        self, section_ids: Collection[str] | None, limit: int, offset: int = 0
    ) -> list[CardStory]:
        found = self.storage.list_stories(section_ids=section_ids, limit=limit, offset=offset)
        return [card_story(s) for s in found]

    def newest_in_groups(
        self, groups: Mapping[K, Collection[str] | None], limit: int
    ) -> dict[K, list[CardStory]]:
        return {key: self.newest(group, limit) for key, group in groups.items()}

    def related(self, story_id: str) -> list[CardStory]:
        refs = self.storage.related_lists([story_id]).get(story_id, [])
        return self.cards([r.story_id for r in refs])

    def counts(self, section_ids: Collection[str]) -> dict[str, int]:
        counts = self.storage.story_counts()
        return {sid: counts.get(sid, 0) for sid in section_ids}

    def search(self, words: Sequence[str]) -> list[str]:
        _, total = self.storage.search_stories(words, limit=0)
        found, _ = self.storage.search_stories(words, limit=total)
        return [s.id for s in found]


def page_reads(storage: Storage) -> PageReads:
    """The narrow page reads on the SQL storage; the ``Storage`` protocol's reads otherwise."""
    return SqlPageReads(storage) if isinstance(storage, SqlStorage) else StorageReads(storage)
