"""Conversions between the model dataclasses and table rows, and the fast item insert.

Kept apart from the queries so that ``sql.py`` reads as the transactions it runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, Dialect, Row, Table

from feedhub.models import (
    FetchLogEntry,
    Item,
    SourceState,
    StoredItem,
    StoreOutcome,
    StoryPlacement,
)
from feedhub.storage.schema import UTCDateTime, items, stories

# Fields of SourceState that record_poll writes back verbatim.
STATE_FIELDS = (
    "etag",
    "last_modified",
    "next_check_at",
    "last_attempt_at",
    "last_success_at",
    "last_error",
    "error_count",
    "disabled_reason",
    "redirected_to",
    "publish_interval",
)
# Fields of Item that an update in place copies as they are.
ITEM_FIELDS = ("link", "title", "author", "summary", "content", "updated", "content_hash")
_INSERT_COLUMNS = (
    "source_id",
    "entry_id",
    "link",
    "title",
    "author",
    "summary",
    "content",
    "published",
    "published_given",
    "updated",
    "categories",
    "content_hash",
    "first_seen",
    "last_changed",
    "item_key",
    "fingerprint",
    "search_terms",
    "search_at",
    "story_id",
    "match_reason",
    "match_key",
    "match_score",
    "match_title_sim",
    "match_text_sim",
)


def categories_json(categories: Sequence[str]) -> str:
    return json.dumps(list(categories), ensure_ascii=False)


class _DriverInsert:
    """An INSERT compiled once for the engine's dialect, its rows handed to the driver's
    ``executemany`` already converted (see ``ItemInsert``)."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
        self._sql = compiled.string
        self._positions = compiled.positiontup  # names in order, for "?"-style drivers
        self._dialect = dialect
        self._time = UTCDateTime().process_bind_param

    def _execute(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if self._positions is not None:
            names = self._positions
            conn.exec_driver_sql(self._sql, [tuple(row[name] for name in names) for row in rows])
        else:
            conn.exec_driver_sql(self._sql, rows)


class ItemInsert(_DriverInsert):
    """``INSERT INTO items`` for many new rows, at driver speed.

    The statement is compiled once from the Core table for the engine's dialect; rows are then
    handed to the driver's ``executemany`` already converted. Going through
    ``Connection.execute`` instead costs about 45 us per row on SQLite here (parameter
    assembly and per-value type processing), more than the database's own work, and new items are
    the bulk of what a poll writes. The one conversion that needs a type, aware UTC datetimes, is
    done by ``UTCDateTime`` itself, so nothing about the stored format is duplicated.
    """

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(items, _INSERT_COLUMNS, dialect)

    def __call__(
        self,
        conn: Connection,
        new: Sequence[Item],
        now: datetime,
        placements: Mapping[str, StoryPlacement] | None = None,
    ) -> None:
        stamp = self._time(now, self._dialect)
        placed = placements or {}
        rows = [
            {
                "source_id": item.source_id,
                "entry_id": item.entry_id,
                "link": item.link,
                "title": item.title,
                "author": item.author,
                "summary": item.summary,
                "content": item.content,
                "published": stamp
                if item.published is None
                else self._time(item.published, self._dialect),
                "published_given": item.published is not None,
                "updated": self._time(item.updated, self._dialect),
                "categories": categories_json(item.categories),
                "content_hash": item.content_hash,
                "first_seen": stamp,
                "last_changed": stamp,
                "item_key": item.key,
                "search_terms": item.search_terms,
                "search_at": None if item.search_terms is None else stamp,
            }
            | _placement_columns(item, placed.get(item.key))
            for item in new
        ]
        self._execute(conn, rows)


def _placement_columns(item: Item, placement: StoryPlacement | None) -> dict[str, Any]:
    if placement is None:
        return {"fingerprint": item.fingerprint, **_UNPLACED}
    link = placement.link
    return {
        "fingerprint": placement.fingerprint,
        "story_id": placement.story_id,
        "match_reason": link.reason,
        "match_key": link.matched_key,
        "match_score": link.score,
        "match_title_sim": link.title_similarity,
        "match_text_sim": link.text_similarity,
    }


_UNPLACED = dict.fromkeys(
    ("story_id", "match_reason", "match_key", "match_score", "match_title_sim", "match_text_sim")
)


class StoryInsert(_DriverInsert):
    """``INSERT INTO stories`` for the stories new items found, at driver speed (as
    ``ItemInsert``, and for the same reason: a poll of new items founds about as many
    stories as it has items)."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(stories, _STORY_COLUMNS, dialect)

    def __call__(
        self, conn: Connection, founders: Sequence[tuple[str, datetime]], now: datetime
    ) -> None:
        stamp = self._time(now, self._dialect)
        rows = [
            {
                "id": story_id,
                "published": self._time(published, self._dialect),
                "created_at": stamp,
                "updated_at": stamp,
                "member_count": 1,
            }
            for story_id, published in founders
        ]
        self._execute(conn, rows)


_STORY_COLUMNS = ("id", "published", "created_at", "updated_at", "member_count")


@lru_cache(maxsize=4)
def story_insert(dialect: Dialect) -> StoryInsert:
    return StoryInsert(dialect)


def state_from_row(row: Row[Any]) -> SourceState:
    return SourceState(
        source_id=row.id,
        url=row.url,
        etag=row.etag,
        last_modified=row.last_modified,
        next_check_at=row.next_check_at,
        last_attempt_at=row.last_attempt_at,
        last_success_at=row.last_success_at,
        last_new_item_at=row.last_new_item_at,
        last_error=row.last_error,
        error_count=row.error_count,
        disabled_reason=row.disabled_reason,
        redirected_to=row.redirected_to,
        publish_interval=row.publish_interval,
        item_count=row.item_count,
    )


def item_change(item: Item, now: datetime) -> dict[str, Any]:
    """Parameters for the update-in-place statement (``p_``-prefixed bind names)."""
    change: dict[str, Any] = {f"p_{name}": getattr(item, name) for name in ITEM_FIELDS}
    change.update(
        p_source=item.source_id,
        p_entry=item.entry_id,
        p_categories=categories_json(item.categories),
        p_now=now,
        p_published=item.published,
        p_given=item.published is not None,
    )
    return change


# The columns ``stored_item`` reads: a query that needs nothing else of an item selects
# ``stored_item_columns(...)`` rather than the whole row (fingerprint, search terms, the
# filing's reasons: together larger than a title and a lede).
_STORED_ITEM_COLUMNS = (
    "source_id entry_id link title author summary content published published_given updated "
    "categories content_hash first_seen last_changed section_id story_id"
).split()


def stored_item_columns(*extra: str) -> tuple[ColumnElement[Any], ...]:
    """The item columns of ``stored_item``, then the ``extra`` ones."""
    return tuple(items.c[name] for name in (*_STORED_ITEM_COLUMNS, *extra))


def stored_item(row: Row[Any]) -> StoredItem:
    item = Item(
        source_id=row.source_id,
        entry_id=row.entry_id,
        link=row.link,
        title=row.title,
        author=row.author,
        summary=row.summary,
        content=row.content,
        published=row.published if row.published_given else None,
        updated=row.updated,
        categories=tuple(json.loads(row.categories)),
        content_hash=row.content_hash,
    )
    return StoredItem(
        item=item,
        first_seen=row.first_seen,
        last_changed=row.last_changed,
        published=row.published,
        section_id=row.section_id,
        story_id=row.story_id,
    )


def log_row(log: FetchLogEntry, outcome: StoreOutcome) -> dict[str, Any]:
    # The pipeline cannot know these counts before storing; the log takes the real ones.
    return {
        "source_id": log.source_id,
        "started_at": log.started_at,
        "duration": log.duration,
        "status": log.status,
        "bytes": log.bytes,
        "new_items": outcome.new,
        "updated_items": outcome.updated,
        "error": log.error,
    }


def log_entry(row: Row[Any]) -> FetchLogEntry:
    return FetchLogEntry(
        source_id=row.source_id,
        started_at=row.started_at,
        duration=row.duration,
        status=row.status,
        bytes=row.bytes,
        new_items=row.new_items,
        updated_items=row.updated_items,
        error=row.error,
    )
