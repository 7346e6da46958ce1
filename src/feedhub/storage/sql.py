"""The Storage protocol on SQLAlchemy Core, for SQLite and PostgreSQL.

Every public method is one short transaction through a shared engine, so the pipeline can call
them from worker threads (``asyncio.to_thread``). SQLAlchemy and driver errors become
``StorageError`` here, naming the operation and the source.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    select,
    text,
    true,
)
from sqlalchemy.exc import SQLAlchemyError, StatementError

from feedhub.errors import StorageError
from feedhub.models import (
    FetchLogEntry,
    Filing,
    FilingTask,
    Item,
    ItemFiling,
    ModelRecord,
    PendingItem,
    RelatedRef,
    SourceSpec,
    SourceState,
    StoredItem,
    StoreOutcome,
    Story,
    StoryActivity,
    StoryAssignment,
    StoryDoc,
    TrainingExample,
    WindowEntry,
)
from feedhub.storage import polls as poll_queries
from feedhub.storage import related as related_queries
from feedhub.storage import sections as section_queries
from feedhub.storage import stories as story_queries
from feedhub.storage.base import Placer
from feedhub.storage.engine import begin_write, mask
from feedhub.storage.migrations import SCHEMA_HEAD
from feedhub.storage.rows import (
    ItemInsert,
    log_entry,
    log_row,
    state_from_row,
    stored_item,
)
from feedhub.storage.schema import fetch_log, items, sources, stories

MIGRATIONS = Path(__file__).parent / "migrations"
# Advisory lock keys (any constants) that serialize migrate() and sync_sources() across
# processes on PostgreSQL; on SQLite, BEGIN IMMEDIATE already does.
PG_MIGRATION_LOCK = 0x66656564
PG_SYNC_LOCK = 0x66656565
_ALEMBIC = threading.Lock()
IN_CHUNK = 500  # entry ids per IN (...) lookup; far below every backend's parameter limit


class SqlStorage:
    """Storage over one SQLAlchemy engine (see ``feedhub.storage.engine`` for the tuning)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._insert_items = ItemInsert(engine.dialect)
        self._label = mask(engine.url.render_as_string(hide_password=True))

    def __repr__(self) -> str:
        return f"SqlStorage({self._label!r})"

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _guard(self, op: str, source_id: str | None = None) -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, sqlite3.Error) as exc:
            what = f"{op} of source {source_id!r}" if source_id is not None else op
            raise StorageError(f"{what} failed on {self._label}: {_reason(exc)}") from exc

    @contextmanager
    def _write(self, op: str, source_id: str | None = None) -> Iterator[Connection]:
        with self._guard(op, source_id), self._engine.begin() as conn:
            begin_write(conn)
            yield conn

    @contextmanager
    def _read(self, op: str, source_id: str | None = None) -> Iterator[Connection]:
        with self._guard(op, source_id), self._engine.connect() as conn:
            yield conn

    def _serialize(self, conn: Connection, key: int) -> None:
        if self._pg:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    # -- lifecycle ------------------------------------------------------------------------

    def migrate(self) -> None:
        if self._at_head():
            return  # the common start: skip loading Alembic (most of a CLI call's start-up)
        from alembic import command
        from alembic.config import Config
        from alembic.util import CommandError

        # Alembic's ``context`` and ``op`` are module-level proxies: two migrations running in
        # one process at once would drive each other's connections, so they take turns.
        with _ALEMBIC, self._write("migrate") as conn:
            self._serialize(conn, PG_MIGRATION_LOCK)
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
            config.set_main_option("path_separator", "os")
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise StorageError(f"migrate failed on {self._label}: {_reason(exc)}") from exc

    def _at_head(self) -> bool:
        try:
            with self._engine.connect() as conn:
                current = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except (SQLAlchemyError, sqlite3.Error):
            return False  # no schema yet, or no database: Alembic will say which
        return [row[0] for row in current] == [SCHEMA_HEAD]

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> None:
        with self._read("ping") as conn:
            conn.execute(select(1)).scalar_one()

    # -- sources --------------------------------------------------------------------------

    def sync_sources(self, specs: Sequence[SourceSpec], now: datetime) -> None:
        with self._write("sync_sources") as conn:
            self._serialize(conn, PG_SYNC_LOCK)
            poll_queries.sync(conn, specs, now)

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
        params: dict[str, Any] = {"p_now": now, "p_until": now + lease, "p_limit": limit}
        if source_ids is not None:
            params["p_ids"] = sorted(set(source_ids))
        claim = poll_queries.claim_statement(self._pg, ignore_schedule, source_ids is not None)
        with self._write("claim_due") as conn:
            rows = conn.execute(claim, params).all()
        states = [state_from_row(row) for row in rows]
        states.sort(
            key=lambda s: (s.next_check_at is not None, s.next_check_at or now, s.source_id)
        )
        return states

    def release(self, source_ids: Collection[str]) -> None:
        if not source_ids:
            return
        with self._write("release") as conn:
            conn.execute(
                poll_queries.RELEASE_ONE, [{"p_id": sid} for sid in sorted(set(source_ids))]
            )

    def get_state(self, source_id: str) -> SourceState | None:
        with self._read("get_state", source_id) as conn:
            row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
        return state_from_row(row) if row is not None else None

    def list_states(self) -> list[SourceState]:
        stmt = select(sources).where(sources.c.configured == true()).order_by(sources.c.id)
        with self._read("list_states") as conn:
            return [state_from_row(row) for row in conn.execute(stmt)]

    # -- polls ----------------------------------------------------------------------------

    def record_poll(
        self,
        state: SourceState,
        items: Sequence[Item],
        log: FetchLogEntry,
        now: datetime,
        placer: Placer | None = None,
    ) -> StoreOutcome:
        """See ``Storage.record_poll``; besides, here:

        - the fetch-log line gets ``new_items``/``updated_items`` from the outcome (the caller
          cannot know them before storing);
        - if the configured URL changed while the poll ran (``state.url`` no longer matches),
          the items and log line are stored but the state is not: the validators and schedule
          belong to the old URL, and the moved source stays due;
        - an item or log line of another source is a caller bug: ValueError.
        """
        batch = poll_queries.checked(state, items, log)
        with self._write("record_poll", state.source_id) as conn:
            return poll_queries.record(conn, self._insert_items, state, batch, log, now, placer)

    def record_polls(
        self,
        polls: Sequence[tuple[SourceState, Sequence[Item], FetchLogEntry]],
        now: datetime,
        placer: Placer | None = None,
    ) -> list[StoreOutcome]:
        """See ``Storage.record_polls``. Polls without items (304s, errors) are written with
        one statement per kind for all of them; that is what a cycle of unchanged feeds is
        made of, and one transaction per poll cost more than the poll's exchange."""
        checked = [
            (state, poll_queries.checked(state, items, log), log) for state, items, log in polls
        ]
        if not checked:
            return []
        first = checked[0][0].source_id
        with self._write("record_polls", first if len(checked) == 1 else None) as conn:
            empty = [(state, log) for state, batch, log in checked if not batch]
            fast = len(empty) > 1 and poll_queries.save_states(conn, empty)
            if fast:
                conn.execute(
                    poll_queries.INSERT_LOG,
                    [log_row(log, poll_queries.NOTHING) for _, log in empty],
                )
            return [
                poll_queries.NOTHING
                if fast and not batch
                else poll_queries.record(conn, self._insert_items, state, batch, log, now, placer)
                for state, batch, log in checked
            ]

    # -- reading --------------------------------------------------------------------------

    def list_items(
        self,
        source_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        source_ids: Collection[str] | None = None,
    ) -> list[StoredItem]:
        stmt = (
            select(items)
            .order_by(items.c.published.desc(), items.c.first_seen.desc(), items.c.pk.desc())
            .limit(limit)
            .offset(offset)
        )
        if source_id is not None:
            stmt = stmt.where(items.c.source_id == source_id)
        if source_ids is not None:
            if not source_ids:
                return []
            stmt = stmt.where(items.c.source_id.in_(list(source_ids)))
        with self._read("list_items") as conn:
            return [stored_item(row) for row in conn.execute(stmt)]

    def data_version(self) -> str:
        with self._read("data_version") as conn:
            row = conn.execute(_DATA_VERSION).one()
        return "|".join(str(value) for value in row)

    # -- stories ----------------------------------------------------------------------------

    def pending_items(self, limit: int = 500) -> list[PendingItem]:
        with self._read("pending_items") as conn:
            return story_queries.pending(conn, limit)

    def window_entries(self, after_pk: int, since: datetime) -> list[WindowEntry]:
        with self._read("window_entries") as conn:
            return story_queries.window(conn, after_pk, since)

    def assign_stories(self, assignments: Sequence[StoryAssignment], now: datetime) -> int:
        with self._write("assign_stories") as conn:
            return story_queries.assign(conn, assignments, now)

    def list_stories(
        self,
        source_ids: Collection[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        min_members: int = 1,
        by_update: bool = False,
        section_ids: Collection[str] | None = None,
    ) -> list[Story]:
        with self._read("list_stories") as conn:
            return story_queries.list_stories(
                conn,
                source_ids,
                limit,
                offset,
                min_members=min_members,
                by_update=by_update,
                section_ids=section_ids,
            )

    def get_story(self, ident: str) -> Story | None:
        with self._read("get_story") as conn:
            return story_queries.get_story(conn, ident)

    # -- sections ---------------------------------------------------------------------------

    def items_to_file(
        self,
        filing_key: str,
        cutoff: datetime,
        valid_sections: Collection[str],
        limit: int = 500,
        *,
        unfiled_only: bool = False,
    ) -> list[FilingTask]:
        with self._read("items_to_file") as conn:
            return section_queries.to_file(
                conn, filing_key, cutoff, valid_sections, limit, unfiled_only=unfiled_only
            )

    def file_items(self, filings: Sequence[Filing], now: datetime) -> int:
        with self._write("file_items") as conn:
            return section_queries.file(conn, filings, now)

    def pin_section(self, item_key: str, section_id: str | None) -> bool:
        with self._write("pin_section") as conn:
            return section_queries.pin(conn, item_key, section_id)

    def item_filing(self, item_key: str) -> ItemFiling | None:
        with self._read("item_filing") as conn:
            return section_queries.item_filing(conn, item_key)

    def training_items(
        self, channels: Mapping[str, Collection[str]], per_section: int
    ) -> list[TrainingExample]:
        with self._read("training_items") as conn:
            return section_queries.training(conn, channels, per_section)

    def unlabeled_items(self, exclude_sources: Collection[str], limit: int) -> list[StoredItem]:
        with self._read("unlabeled_items") as conn:
            return section_queries.unlabeled(conn, exclude_sources, limit)

    def save_model(self, record: ModelRecord) -> None:
        with self._write("save_model") as conn:
            section_queries.save_model(conn, record)

    def latest_model(self, *, with_data: bool = True) -> ModelRecord | None:
        with self._read("latest_model") as conn:
            return section_queries.latest_model(conn, with_data=with_data)

    def section_counts(self) -> tuple[dict[str | None, int], dict[str | None, int]]:
        with self._read("section_counts") as conn:
            return section_queries.section_counts(conn)

    def story_counts(self) -> dict[str | None, int]:
        with self._read("story_counts") as conn:
            return section_queries.story_counts(conn)

    # -- related reading, hot, search -------------------------------------------------------

    def related_window(self, since: datetime) -> list[StoryDoc]:
        with self._read("related_window") as conn:
            return related_queries.window_docs(conn, since)

    def related_due(self, limit: int = 500) -> list[StoryDoc]:
        with self._read("related_due") as conn:
            return related_queries.due_docs(conn, limit)

    def save_related(
        self,
        lists: Mapping[str, Sequence[tuple[str, float]]],
        done: Collection[str],
        now: datetime,
    ) -> None:
        with self._write("save_related") as conn:
            related_queries.save(conn, lists, done, now)

    def related_lists(self, story_ids: Collection[str]) -> dict[str, list[RelatedRef]]:
        with self._read("related_lists") as conn:
            return related_queries.lists(conn, story_ids)

    def story_activity(self, since: datetime) -> list[StoryActivity]:
        with self._read("story_activity") as conn:
            return related_queries.activity(conn, since)

    def stories_by_ids(self, story_ids: Sequence[str]) -> list[Story]:
        with self._read("stories_by_ids") as conn:
            return related_queries.by_ids(conn, story_ids)

    def search_stories(
        self,
        words: Sequence[str],
        limit: int = 20,
        offset: int = 0,
        *,
        section_ids: Collection[str] | None = None,
    ) -> tuple[list[Story], int]:
        with self._read("search_stories") as conn:
            return related_queries.search(conn, words, limit, offset, section_ids)

    def items_to_index(self, limit: int = 1000) -> list[tuple[int, str, str]]:
        with self._read("items_to_index") as conn:
            return related_queries.unindexed(conn, limit)

    def index_items(self, rows: Sequence[tuple[int, str]], now: datetime) -> int:
        with self._write("index_items") as conn:
            return related_queries.set_terms(conn, rows, now)

    def fetch_outcomes(self) -> dict[tuple[str, str], int]:
        with self._read("fetch_outcomes") as conn:
            rows = conn.execute(_OUTCOMES).all()
        return {
            (sid, outcome): int(n)
            for sid, *counts in rows
            for outcome, n in zip(("ok", "not_modified", "error"), counts, strict=True)
            if n
        }

    def prune_fetch_log(self, before: datetime, limit: int = 10_000) -> int:
        oldest = (
            select(fetch_log.c.pk)
            .where(fetch_log.c.started_at < before)
            .order_by(fetch_log.c.started_at)
            .limit(limit)
        )
        stmt = delete(fetch_log).where(fetch_log.c.pk.in_(oldest.scalar_subquery()))
        with self._write("prune_fetch_log") as conn:
            return int(conn.execute(stmt).rowcount)

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
            return [log_entry(row) for row in conn.execute(stmt)]

    def last_success_at(self) -> datetime | None:
        with self._read("last_success_at") as conn:
            value: datetime | None = conn.execute(
                select(func.max(sources.c.last_success_at))
            ).scalar_one()
        return value


_DATA_VERSION = select(
    select(func.max(items.c.pk)).scalar_subquery(),
    select(func.max(items.c.last_changed)).scalar_subquery(),
    select(func.max(stories.c.updated_at)).scalar_subquery(),
    select(func.max(items.c.section_at)).scalar_subquery(),
    select(func.max(stories.c.related_at)).scalar_subquery(),
)
_OUTCOMES = select(
    sources.c.id, sources.c.fetches_ok, sources.c.fetches_not_modified, sources.c.fetches_error
)


def _reason(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    return f"{type(cause).__name__}: {' '.join(str(cause).split())}"
