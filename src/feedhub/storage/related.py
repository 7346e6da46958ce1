"""Related-reading, hot and search queries.

Plain functions over a Connection; ``SqlStorage`` wraps each in its transaction and error guard.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Row,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from feedhub.core.searchterms import query_phrases
from feedhub.models import RelatedRef, Story, StoryActivity, StoryDoc
from feedhub.storage.schema import UTCDateTime, items, stories, story_related
from feedhub.storage.stories import load as load_stories

_CHUNK = 500


def _docs(conn: Connection, rows: Sequence[Row[Any]]) -> list[StoryDoc]:
    ids = [r.id for r in rows]
    sources: dict[str, list[str]] = {sid: [] for sid in ids}
    for start in range(0, len(ids), _CHUNK):
        stmt = (
            select(items.c.story_id, items.c.source_id)
            .where(items.c.story_id.in_(ids[start : start + _CHUNK]))
            .order_by(items.c.first_seen, items.c.pk)
        )
        for story_id, source_id in conn.execute(stmt):
            seen = sources[story_id]
            if source_id not in seen:
                seen.append(source_id)
    return [
        StoryDoc(
            r.id,
            r.title,
            r.content or r.summary or "",
            r.published,
            tuple(sources[r.id]) or (r.source_id,),
            r.section_id,
            r.section_detail,
        )
        for r in rows
    ]


def _doc_select() -> Any:
    return select(
        stories.c.id,
        stories.c.published,
        stories.c.section_id,
        items.c.title,
        items.c.summary,
        items.c.content,
        items.c.source_id,
        items.c.section_detail,
    ).join(items, items.c.item_key == stories.c.id)


def window_docs(conn: Connection, since: datetime) -> list[StoryDoc]:
    """Stories published since ``since``, oldest first."""
    stmt = (
        _doc_select()
        .where(stories.c.published >= since)
        .order_by(stories.c.published, stories.c.id)
    )
    return _docs(conn, conn.execute(stmt).all())


def due_docs(conn: Connection, limit: int) -> list[StoryDoc]:
    """Stories whose related reading is due (new, joined, or re-filed), oldest first."""
    stmt = (
        _doc_select()
        .where(stories.c.related_at.is_(None))
        .order_by(stories.c.published, stories.c.id)
        .limit(limit)
    )
    return _docs(conn, conn.execute(stmt).all())


def save(
    conn: Connection,
    lists: Mapping[str, Sequence[tuple[str, float]]],
    done: Collection[str],
    now: datetime,
) -> None:
    """Replace the lists of these stories; mark ``done`` as computed at ``now``."""
    ids = sorted(lists)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        conn.execute(delete(story_related).where(story_related.c.story_id.in_(chunk)))
    rows = [
        {"story_id": sid, "rank": rank, "related_id": rid, "score": float(score)}
        for sid in ids
        for rank, (rid, score) in enumerate(lists[sid])
    ]
    if rows:
        conn.execute(insert(story_related), rows)
    marked = sorted(done)
    for start in range(0, len(marked), _CHUNK):
        chunk = marked[start : start + _CHUNK]
        conn.execute(update(stories).where(stories.c.id.in_(chunk)).values(related_at=now))


def lists(conn: Connection, ids: Collection[str]) -> dict[str, list[RelatedRef]]:
    """Stored lists, in rank order, with each related story's title (its founder's)."""
    out: dict[str, list[RelatedRef]] = {}
    wanted = sorted(ids)
    for start in range(0, len(wanted), _CHUNK):
        stmt = (
            select(
                story_related.c.story_id,
                story_related.c.related_id,
                story_related.c.score,
                items.c.title,
            )
            .join(items, items.c.item_key == story_related.c.related_id)
            .where(story_related.c.story_id.in_(wanted[start : start + _CHUNK]))
            .order_by(story_related.c.story_id, story_related.c.rank)
        )
        for sid, rid, score, title in conn.execute(stmt):
            out.setdefault(sid, []).append(RelatedRef(rid, title, score))
    return out


def activity(conn: Connection, since: datetime) -> list[StoryActivity]:
    """Every story created (first seen) since ``since``: its section, sources and member
    first-seen times."""
    stmt = (
        select(stories.c.id, stories.c.section_id, items.c.source_id, items.c.first_seen)
        .join(items, items.c.story_id == stories.c.id)
        .where(stories.c.created_at >= since)
        .order_by(items.c.first_seen)  # each story's times come in order: no sort per story
    )
    found: dict[str, tuple[str | None, set[str], list[datetime]]] = {}
    for sid, section, source, seen in conn.execute(stmt):
        entry = found.setdefault(sid, (section, set(), []))
        entry[1].add(source)
        entry[2].append(seen)
    return [
        StoryActivity(sid, section, len(srcs), tuple(times))
        for sid, (section, srcs, times) in sorted(found.items())
    ]


def by_ids(conn: Connection, ids: Sequence[str]) -> list[Story]:
    """Stories in the order of ``ids`` (unknown ids left out)."""
    rows: list[Row[Any]] = []
    for start in range(0, len(ids), _CHUNK):
        rows += conn.execute(
            select(stories).where(stories.c.id.in_(list(ids[start : start + _CHUNK])))
        ).all()
    by_id = {s.id: s for s in load_stories(conn, rows)}
    return [by_id[i] for i in ids if i in by_id]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(sqlite: bool, column: ColumnElement[Any], word: str) -> ColumnElement[bool]:
    """``column`` contains ``word`` (already lower-cased), Latin letters in any case.

    On SQLite, ``LIKE`` already ignores the case of ASCII letters (and of no others, as
    ``lower()`` does), and a word without ASCII letters (most Chinese queries) needs no case
    folding at all: ``instr`` finds it several times faster than ``LIKE``, which decodes and
    folds every character. PostgreSQL's ``LIKE`` is case-sensitive, hence ``lower()`` there.
    """
    if not sqlite:
        return func.lower(func.coalesce(column, "")).like(_like(word), escape="\\")
    if any("a" <= ch <= "z" for ch in word):
        return column.like(_like(word), escape="\\")
    return func.instr(column, word) > 0


def _fts_query(phrases: Sequence[Sequence[str]]) -> str:
    """FTS5: every phrase, each of consecutive terms; a lone word matches as a prefix."""
    parts = []
    for phrase in phrases:
        quoted = '"' + " ".join(phrase) + '"'
        parts.append(quoted + " *" if len(phrase) == 1 and phrase[0].isascii() else quoted)
    return " AND ".join(parts)


def _ts_query(phrases: Sequence[Sequence[str]]) -> str:
    """PostgreSQL tsquery with the same meaning as ``_fts_query``."""
    parts = []
    for phrase in phrases:
        if len(phrase) == 1 and phrase[0].isascii():
            parts.append(f"'{phrase[0]}':*")
        else:
            parts.append("(" + " <-> ".join(f"'{term}'" for term in phrase) + ")")
    return " & ".join(parts)


# On SQLite, a search looks up the row of every matching item (for its story) and of every
# matching story (for its time). Item rows are large (two or three to a page), so each lookup
# reads a page of its own: most of a broad search's time. Two narrow indexes answer both
# lookups from far fewer pages; SQLite's planner does not choose them by itself (a rowid or
# primary-key lookup looks as cheap to it), hence INDEXED BY. Migration 0008 adds them; a
# database without them (dropped by hand) gets the plain query.
SEARCH_INDEXES = frozenset({"ix_items_pk_story", "ix_stories_id_published"})
_HINTED_SEARCH = text(
    "SELECT s.id FROM stories AS s INDEXED BY ix_stories_id_published WHERE s.id IN ("
    "SELECT i.story_id FROM items AS i INDEXED BY ix_items_pk_story "
    "WHERE i.story_id IS NOT NULL AND i.pk IN "
    "(SELECT rowid FROM items_fts WHERE items_fts MATCH :q)) "
    "ORDER BY s.published DESC, s.id DESC"
)
_INDEXES: weakref.WeakKeyDictionary[Engine, frozenset[str]] = weakref.WeakKeyDictionary()


def _has_search_indexes(conn: Connection) -> bool:
    """Whether this SQLite database has ``SEARCH_INDEXES`` (looked up once per engine)."""
    found = _INDEXES.get(conn.engine)
    if found is None:
        names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        found = _INDEXES[conn.engine] = frozenset(names.scalars())
    return SEARCH_INDEXES <= found


def search_ids(
    conn: Connection, words: Sequence[str], section_ids: Collection[str] | None = None
) -> list[str]:
    """Ids of the stories with an item whose title or text contains every word, newest first.

    Words are looked up in the full-text index (``core.searchterms``: a Chinese word is found
    anywhere in running text, a Latin word as a word or word prefix, in any case); a lone
    Chinese character has no index entry and is found by scanning the items the index left.
    Items not indexed yet (new in the last moments) are not found. All matches are listed (a
    page of them and their number both come from this list: one scan, not two)."""
    phrases, lone = query_phrases(" ".join(words))
    if not phrases and not lone:
        return []
    sqlite = conn.dialect.name == "sqlite"
    if sqlite and phrases and not lone and section_ids is None and _has_search_indexes(conn):
        return list(conn.execute(_HINTED_SEARCH, {"q": _fts_query(phrases)}).scalars())
    conds: list[ColumnElement[bool]] = []
    if phrases and sqlite:
        matched = text("SELECT rowid FROM items_fts WHERE items_fts MATCH :q").bindparams(
            q=_fts_query(phrases)
        )
        conds.append(items.c.pk.in_(matched.columns(rowid=Integer)))
    elif phrases:
        vector = func.to_tsvector("simple", func.coalesce(items.c.search_terms, ""))
        conds.append(vector.op("@@")(func.to_tsquery("simple", _ts_query(phrases))))
    for char in lone:
        conds.append(
            or_(
                *(
                    _contains(sqlite, col, char)
                    for col in (items.c.title, items.c.summary, items.c.content)
                )
            )
        )
    # No DISTINCT: IN already ignores repeats, and sorting the matches for it costs about a
    # tenth of a broad search.
    matching = select(items.c.story_id).where(items.c.story_id.is_not(None), *conds)
    base = select(stories.c.id).where(stories.c.id.in_(matching))
    if section_ids is not None:
        base = base.where(stories.c.section_id.in_(sorted(section_ids)))
    ordered = base.order_by(stories.c.published.desc(), stories.c.id.desc())
    return list(conn.execute(ordered).scalars())


def search(
    conn: Connection,
    words: Sequence[str],
    limit: int,
    offset: int = 0,
    section_ids: Collection[str] | None = None,
) -> tuple[list[Story], int]:
    """A page of ``search_ids``'s stories, and how many there are in all."""
    ids = search_ids(conn, words, section_ids)
    return by_ids(conn, ids[offset : offset + limit]), len(ids)


def unindexed(conn: Connection, limit: int) -> list[tuple[int, str, str]]:
    """Items whose search terms are due (new or changed): pk, title, summary and content
    HTML (each may be empty)."""
    stmt = (
        select(items.c.pk, items.c.title, items.c.summary, items.c.content)
        .where(items.c.search_at.is_(None))
        .order_by(items.c.pk)
        .limit(limit)
    )
    return [
        (pk, title, "\n".join(part for part in (summary, content) if part))
        for pk, title, summary, content in conn.execute(stmt)
    ]


_SET_TERMS = (
    update(items)
    .where(items.c.pk == bindparam("p_pk"))
    .values(search_terms=bindparam("p_terms"), search_at=bindparam("p_now", type_=UTCDateTime))
)


def set_terms(conn: Connection, rows: Sequence[tuple[int, str]], now: datetime) -> int:
    if rows:
        conn.execute(_SET_TERMS, [{"p_pk": pk, "p_terms": t, "p_now": now} for pk, t in rows])
    return len(rows)
