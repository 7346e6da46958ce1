"""The Storage protocol on SQLAlchemy Core, for SQLite and PostgreSQL.

Every public method is one short transaction through a shared engine, so the pipeline can call
them from worker threads (``asyncio.to_thread``). SQLAlchemy and driver errors become
``StorageError`` here, naming the operation and the source.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Integer,
    Row,
    bindparam,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import SQLAlchemyError, StatementError

from feedhub.errors import StorageError
from feedhub.models import FetchLogEntry, Item, SourceSpec, SourceState, StoredItem, StoreOutcome
from feedhub.storage.engine import WRITE, mask
from feedhub.storage.schema import UTCDateTime, fetch_log, items, sources

MIGRATIONS = Path(__file__).parent / "migrations"
PG_MIGRATION_LOCK = 0x66656564  # any constant; serializes migrate() across processes
IN_CHUNK = 500  # entry ids per IN (...) lookup; far below every backend's parameter limit

# Fields of SourceState that record_poll writes back verbatim.
_STATE_FIELDS = (
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
_ITEM_FIELDS = ("link", "title", "author", "summary", "content", "updated", "content_hash")

# Statements built once: executing a prebuilt construct skips rebuilding it on every poll.
_SAVE_STATE = (
    update(sources)
    .where(sources.c.id == bindparam("p_id"), sources.c.url == bindparam("p_url"))
    .values({name: bindparam(f"p_{name}") for name in _STATE_FIELDS} | {"claimed_until": None})
)
_RELEASE_ONE = update(sources).where(sources.c.id == bindparam("p_id")).values(claimed_until=None)
_COUNT_NEW = (
    update(sources)
    .where(sources.c.id == bindparam("p_id"))
    .values(
        item_count=sources.c.item_count + bindparam("p_new", type_=Integer),
        last_new_item_at=bindparam("p_now", type_=UTCDateTime),
    )
)
_EXISTING = select(items.c.entry_id, items.c.content_hash).where(
    items.c.source_id == bindparam("p_source"),
    items.c.entry_id.in_(bindparam("p_entries", expanding=True)),
)
_INSERT_ITEM = items.insert()
_UPDATE_ITEM = (
    update(items)
    .where(items.c.source_id == bindparam("p_source"), items.c.entry_id == bindparam("p_entry"))
    .values(
        {name: bindparam(f"p_{name}") for name in _ITEM_FIELDS}
        | {
            "categories": bindparam("p_categories"),
            "last_changed": bindparam("p_now", type_=UTCDateTime),
            # A feed that stops giving a date keeps the one it gave before (or first_seen).
            "published": func.coalesce(
                bindparam("p_published", type_=UTCDateTime), items.c.published
            ),
            "published_given": or_(items.c.published_given, bindparam("p_given", type_=Boolean)),
        }
    )
)
_INSERT_LOG = fetch_log.insert()


class SqlStorage:
    """Storage over one SQLAlchemy engine (see ``feedhub.storage.engine`` for the tuning)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self._pg = engine.dialect.name == "postgresql"
        self._label = mask(engine.url.render_as_string(hide_password=True))

    def __repr__(self) -> str:
        return f"SqlStorage({self._label!r})"

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _guard(self, op: str, source_id: str | None = None) -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, CommandError, sqlite3.Error) as exc:
            what = f"{op} of source {source_id!r}" if source_id is not None else op
            raise StorageError(f"{what} failed on {self._label}: {_reason(exc)}") from exc

    @contextmanager
    def _write(self, op: str, source_id: str | None = None) -> Iterator[Connection]:
        with self._guard(op, source_id), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, op: str, source_id: str | None = None) -> Iterator[Connection]:
        with self._guard(op, source_id), self._engine.connect() as conn:
            yield conn

    # -- lifecycle ------------------------------------------------------------------------

    def migrate(self) -> None:
        with self._write("migrate") as conn:
            if self._pg:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
            config.set_main_option("path_separator", "os")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> None:
        with self._read("ping") as conn:
            conn.execute(select(1)).scalar_one()

    # -- sources --------------------------------------------------------------------------

    def sync_sources(self, specs: Sequence[SourceSpec], now: datetime) -> None:
        wanted = {spec.source_id: spec.url for spec in specs}
        with self._write("sync_sources") as conn:
            rows = conn.execute(select(sources.c.id, sources.c.url, sources.c.configured)).all()
            have = {row.id: row for row in rows}
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
                conn.execute(_MOVE_SOURCE, moved)
            if back:
                conn.execute(_CONFIGURE, back)
            if gone:
                conn.execute(_UNCONFIGURE, gone)

    def claim_due(
        self,
        now: datetime,
        limit: int,
        lease: timedelta,
        source_ids: Collection[str] | None = None,
        *,
        ignore_schedule: bool = False,
    ) -> list[SourceState]:
        if limit <= 0 or (source_ids is not None and not source_ids):
            return []
        due = sources.alias("due")
        conditions = [
            due.c.configured == true(),
            due.c.disabled_reason.is_(None),
            or_(due.c.claimed_until.is_(None), due.c.claimed_until <= now),
        ]
        if not ignore_schedule:
            conditions.append(or_(due.c.next_check_at.is_(None), due.c.next_check_at <= now))
        if source_ids is not None:
            conditions.append(due.c.id.in_(sorted(set(source_ids))))
        pick = (
            select(due.c.id)
            .where(*conditions)
            .order_by(due.c.next_check_at.asc().nulls_first(), due.c.id)
            .limit(limit)
        )
        if self._pg:
            # Rows another poller is claiming right now are skipped, not waited for.
            pick = pick.with_for_update(skip_locked=True)
        # On SQLite the write transaction (BEGIN IMMEDIATE) already excludes other claimers.
        claim = (
            update(sources)
            .where(sources.c.id.in_(pick))
            .values(claimed_until=now + lease)
            .returning(*sources.c)
        )
        with self._write("claim_due") as conn:
            rows = conn.execute(claim).all()
        states = [_state(row) for row in rows]
        states.sort(key=lambda s: (s.next_check_at is not None, s.next_check_at or now, s.source_id))
        return states

    def release(self, source_ids: Collection[str]) -> None:
        if not source_ids:
            return
        with self._write("release") as conn:
            conn.execute(_RELEASE_ONE, [{"p_id": sid} for sid in sorted(set(source_ids))])

    def get_state(self, source_id: str) -> SourceState | None:
        with self._read("get_state", source_id) as conn:
            row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
        return _state(row) if row is not None else None

    def list_states(self) -> list[SourceState]:
        stmt = select(sources).where(sources.c.configured == true()).order_by(sources.c.id)
        with self._read("list_states") as conn:
            return [_state(row) for row in conn.execute(stmt)]

    # -- polls ----------------------------------------------------------------------------

    def record_poll(
        self, state: SourceState, items: Sequence[Item], log: FetchLogEntry, now: datetime
    ) -> StoreOutcome:
        sid = state.source_id
        batch: dict[str, Item] = {}
        for item in items:  # a feed listing one entry twice: the last one wins
            if item.source_id != sid:
                raise ValueError(f"record_poll of {sid!r} got an item of {item.source_id!r}")
            batch[item.entry_id] = item
        if log.source_id != sid:
            raise ValueError(f"record_poll of {sid!r} got a log line of {log.source_id!r}")
        with self._write("record_poll", sid) as conn:
            # Saving the state first also takes the row lock that orders concurrent polls.
            params: dict[str, Any] = {f"p_{name}": getattr(state, name) for name in _STATE_FIELDS}
            saved = conn.execute(_SAVE_STATE, {"p_id": sid, "p_url": state.url, **params})
            if saved.rowcount == 0:
                # The config moved this source to another URL while it was being polled: keep
                # the items, but not validators or a schedule that belong to the old URL.
                if conn.execute(_RELEASE_ONE, {"p_id": sid}).rowcount == 0:
                    raise StorageError(f"record_poll of source {sid!r}: no such source")
            outcome = self._upsert(conn, sid, batch, now) if batch else StoreOutcome(0, 0, 0)
            if outcome.new:
                conn.execute(_COUNT_NEW, {"p_id": sid, "p_new": outcome.new, "p_now": now})
            # The pipeline cannot know these counts before storing; the log takes the real ones.
            conn.execute(_INSERT_LOG, _log_row(log, outcome))
        return outcome

    def _upsert(
        self, conn: Connection, sid: str, batch: dict[str, Item], now: datetime
    ) -> StoreOutcome:
        entry_ids = list(batch)
        known: dict[str, str] = {}
        for start in range(0, len(entry_ids), IN_CHUNK):
            chunk = entry_ids[start : start + IN_CHUNK]
            for entry_id, digest in conn.execute(_EXISTING, {"p_source": sid, "p_entries": chunk}):
                known[entry_id] = digest
        fresh = [_item_row(item, now) for eid, item in batch.items() if eid not in known]
        changed = [
            _item_change(item, now)
            for eid, item in batch.items()
            if eid in known and known[eid] != item.content_hash
        ]
        if fresh:
            conn.execute(_INSERT_ITEM, fresh)
        if changed:
            conn.execute(_UPDATE_ITEM, changed)
        return StoreOutcome(len(fresh), len(changed), len(batch) - len(fresh) - len(changed))

    # -- reading --------------------------------------------------------------------------

    def list_items(
        self, source_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[StoredItem]:
        stmt = (
            select(items)
            .order_by(items.c.published.desc(), items.c.first_seen.desc(), items.c.pk.desc())
            .limit(limit)
            .offset(offset)
        )
        if source_id is not None:
            stmt = stmt.where(items.c.source_id == source_id)
        with self._read("list_items") as conn:
            return [_stored_item(row) for row in conn.execute(stmt)]

    def count_items(self, source_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(items)
        if source_id is not None:
            stmt = stmt.where(items.c.source_id == source_id)
        with self._read("count_items") as conn:
            return int(conn.execute(stmt).scalar_one())

    def fetch_log(self, source_id: str | None = None, limit: int = 50) -> list[FetchLogEntry]:
        stmt = (
            select(fetch_log)
            .order_by(fetch_log.c.started_at.desc(), fetch_log.c.pk.desc())
            .limit(limit)
        )
        if source_id is not None:
            stmt = stmt.where(fetch_log.c.source_id == source_id)
        with self._read("fetch_log") as conn:
            return [_log_entry(row) for row in conn.execute(stmt)]

    def last_success_at(self) -> datetime | None:
        with self._read("last_success_at") as conn:
            value: datetime | None = conn.execute(
                select(func.max(sources.c.last_success_at))
            ).scalar_one()
        return value


_MOVE_SOURCE = (
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
_CONFIGURE = update(sources).where(sources.c.id == bindparam("p_id")).values(configured=True)
_UNCONFIGURE = update(sources).where(sources.c.id == bindparam("p_id")).values(configured=False)


def _reason(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    return f"{type(cause).__name__}: {' '.join(str(cause).split())}"


def _state(row: Row[Any]) -> SourceState:
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


def _item_row(item: Item, now: datetime) -> dict[str, Any]:
    return {
        "source_id": item.source_id,
        "entry_id": item.entry_id,
        "link": item.link,
        "title": item.title,
        "author": item.author,
        "summary": item.summary,
        "content": item.content,
        "published": item.published if item.published is not None else now,
        "published_given": item.published is not None,
        "updated": item.updated,
        "categories": json.dumps(list(item.categories), ensure_ascii=False),
        "content_hash": item.content_hash,
        "first_seen": now,
        "last_changed": now,
    }


def _item_change(item: Item, now: datetime) -> dict[str, Any]:
    change: dict[str, Any] = {f"p_{name}": getattr(item, name) for name in _ITEM_FIELDS}
    change.update(
        p_source=item.source_id,
        p_entry=item.entry_id,
        p_categories=json.dumps(list(item.categories), ensure_ascii=False),
        p_now=now,
        p_published=item.published,
        p_given=item.published is not None,
    )
    return change


def _stored_item(row: Row[Any]) -> StoredItem:
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
        item=item, first_seen=row.first_seen, last_changed=row.last_changed, published=row.published
    )


def _log_row(log: FetchLogEntry, outcome: StoreOutcome) -> dict[str, Any]:
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


def _log_entry(row: Row[Any]) -> FetchLogEntry:
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
