"""The storage contract (feedhub.storage.base), run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import feedhub
import feedhub.storage
from feedhub.errors import StorageError
from feedhub.models import FetchLogEntry, Item, SourceSpec, SourceState
from feedhub.storage import Storage, open_storage
from feedhub.storage.engine import BUSY_TIMEOUT_S, make_engine, parse
from feedhub.storage.schema import metadata
from tests.support_postgres import isolated_postgres_url

T0 = datetime(2025, 11, 25, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
CST = timezone(timedelta(hours=8))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        # A file, not :memory:, so WAL and the connection setup are exercised.
        yield f"sqlite:///{tmp_path_factory.mktemp('db')}/feedhub.db"
    else:
        with isolated_postgres_url(request.getfixturevalue("postgres_url")) as url:
            yield url


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    store = open_storage(db_url)
    store.migrate()
    yield store
    store.close()


def item(
    n: int,
    source_id: str = "a",
    *,
    title: str | None = None,
    published: datetime | None = T0,
    version: str = "v1",
) -> Item:
    title = title if title is not None else f"title {n}"
    return Item(
        source_id=source_id,
        entry_id=f"entry-{n}",
        link=f"https://example.org/{source_id}/{n}",
        title=title,
        author="author",
        summary=f"summary {n}",
        content=f"<p>content {n} {version}</p>",
        published=published,
        updated=None,
        categories=("news",),
        content_hash=f"{n}-{title}-{published}-{version}",
    )


def log(source_id: str, started_at: datetime, status: int | None = 200) -> FetchLogEntry:
    return FetchLogEntry(
        source_id=source_id,
        started_at=started_at,
        duration=0.25,
        status=status,
        bytes=1234,
        new_items=0,
        updated_items=0,
        error=None if status == 200 else "boom",
    )


def poll(
    store: Storage, source_id: str, items: list[Item], now: datetime, **changes: Any
) -> tuple[int, int, int]:
    state = store.get_state(source_id)
    assert state is not None
    outcome = store.record_poll(replace(state, **changes), items, log(source_id, now), now)
    return outcome.new, outcome.updated, outcome.unchanged


def sync(store: Storage, *ids: str, now: datetime = T0) -> None:
    store.sync_sources([SourceSpec(sid, f"https://example.org/{sid}.xml") for sid in ids], now)


def claim(
    store: Storage,
    now: datetime = T0,
    limit: int = 100,
    source_ids: list[str] | None = None,
    *,
    ignore_schedule: bool = False,
) -> list[str]:
    states = store.claim_due(now, limit, LEASE, source_ids, ignore_schedule=ignore_schedule)
    return [s.source_id for s in states]


# -- schema and migrations ------------------------------------------------------------------


def test_migrate_twice_is_harmless_and_keeps_data(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [item(1)], T0)
    storage.migrate()
    storage.migrate()
    assert storage.count_items() == 1
    assert [s.source_id for s in storage.list_states()] == ["a"]


def _plain_schema(obj: Any, name: str | None, kind: str, reflected: bool, _: Any) -> bool:
    """What schema.py describes: not the full-text index the migration makes per database
    (SQLite's FTS5 table and its shadow tables, PostgreSQL's expression index)."""
    if kind == "table" and name is not None and name.startswith("items_fts"):
        return False
    return not (kind == "index" and name == "ix_items_search")


def test_head_revision_builds_the_schema_module(storage: Storage, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            # SQLAlchemy cannot reflect the expression index (ix_items_search) and says so.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
            context = MigrationContext.configure(conn, opts={"include_object": _plain_schema})
            diff = compare_metadata(context, metadata)
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                found = conn.execute(text("SELECT name FROM sqlite_master")).scalars().all()
            assert {"items_fts", "items_fts_insert", "items_fts_update"} <= set(found)
        else:
            with engine.connect() as conn:
                found = conn.execute(text("SELECT indexname FROM pg_indexes")).scalars().all()
            assert "ix_items_search" in found
    finally:
        engine.dispose()
    assert diff == []


def test_concurrent_first_starts_migrate_and_sync_once(db_url: str) -> None:
    stores = [open_storage(db_url), open_storage(db_url)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def start(store: Storage) -> None:
        try:
            barrier.wait()
            store.migrate()
            sync(store, "a", "b")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert [s.source_id for s in stores[0].list_states()] == ["a", "b"]
    finally:
        for store in stores:
            store.close()


_START_SCRIPT = """
import pathlib, sys, time
from datetime import datetime, timezone
from feedhub.models import SourceSpec
from feedhub.storage import open_storage
url, flags, me = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
store = open_storage(url)
(flags / f"ready-{me}").touch()
while not (flags / "go").exists():
    time.sleep(0.005)
store.migrate()
now = datetime(2025, 11, 25, tzinfo=timezone.utc)
store.sync_sources([SourceSpec(i, f"https://example.org/{i}") for i in ("a", "b")], now)
store.close()
"""


def test_concurrent_first_starts_in_two_processes(db_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(feedhub.__file__).parents[1]))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _START_SCRIPT, db_url, str(tmp_path), str(n)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in range(2)):
        assert time.monotonic() < deadline and all(c.poll() is None for c in children)
        time.sleep(0.01)
    (tmp_path / "go").touch()
    errors = [child.communicate(timeout=60)[1] for child in children]
    assert [child.returncode for child in children] == [0, 0], errors
    store = open_storage(db_url)
    try:
        assert [s.source_id for s in store.list_states()] == ["a", "b"]
    finally:
        store.close()


def test_database_newer_than_the_code_is_a_storage_error(storage: Storage, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        engine.dispose()
    with pytest.raises(StorageError, match="migrate failed.*9999_future"):
        storage.migrate()


def test_public_surface() -> None:
    assert feedhub.storage.__all__ == ["Storage", "open_storage"]


def test_ping(storage: Storage) -> None:
    storage.ping()


# -- sources --------------------------------------------------------------------------------


def test_new_sources_are_due_now(storage: Storage) -> None:
    sync(storage, "b", "a")
    states = storage.list_states()
    assert [s.source_id for s in states] == ["a", "b"]
    assert all(s.next_check_at == T0 and s.url.endswith(f"/{s.source_id}.xml") for s in states)
    assert claim(storage, T0 - timedelta(seconds=1)) == []
    assert claim(storage) == ["a", "b"]


def test_url_change_resets_validators_redirect_and_disablement(storage: Storage) -> None:
    sync(storage, "a")
    poll(
        storage, "a", [], T0,
        etag='"x"', last_modified="Tue, 25 Nov 2025 08:00:00 GMT", redirected_to="https://n/",
        disabled_reason="410 Gone", error_count=4, next_check_at=T0 + timedelta(days=1),
    )  # fmt: skip
    assert claim(storage, T0 + timedelta(hours=1)) == []
    later = T0 + timedelta(hours=1)
    storage.sync_sources([SourceSpec("a", "https://moved.example.org/feed")], later)
    state = storage.get_state("a")
    assert state is not None
    assert state.url == "https://moved.example.org/feed"
    assert (state.etag, state.last_modified, state.redirected_to) == (None, None, None)
    assert state.disabled_reason is None and state.error_count == 0
    assert state.next_check_at == later
    assert claim(storage, later) == ["a"]


def test_unchanged_sync_keeps_state(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [], T0, etag='"e"', next_check_at=T0 + timedelta(hours=2))
    sync(storage, "a", now=T0 + timedelta(hours=1))
    state = storage.get_state("a")
    assert state is not None and state.etag == '"e"'
    assert state.next_check_at == T0 + timedelta(hours=2)


def test_removed_source_keeps_row_and_items_but_is_never_claimed(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(storage, "a", [item(1), item(2)], T0)
    sync(storage, "b")
    assert [s.source_id for s in storage.list_states()] == ["b"]
    assert storage.get_state("a") is not None
    assert storage.count_items("a") == 2
    assert claim(storage, T0 + timedelta(days=1), ignore_schedule=True) == ["b"]
    assert claim(storage, T0 + timedelta(days=2), source_ids=["a"], ignore_schedule=True) == []
    sync(storage, "a", "b")  # configured again: claimable again
    assert claim(storage, T0 + timedelta(days=3)) == ["a", "b"]


# -- claiming -------------------------------------------------------------------------------


def test_claim_takes_only_due_sources_oldest_first_up_to_limit(storage: Storage) -> None:
    sync(storage, "a", "b", "c", "d")
    for sid, hours in (("a", 3), ("b", 1), ("c", 2), ("d", 9)):
        poll(storage, sid, [], T0, next_check_at=T0 + timedelta(hours=hours))
    now = T0 + timedelta(hours=5)
    assert claim(storage, now, limit=2) == ["b", "c"]
    assert claim(storage, now, limit=2) == ["a"]
    assert claim(storage, now, limit=2) == []


def test_lease_blocks_a_second_claim_until_it_expires(storage: Storage) -> None:
    sync(storage, "a")
    assert claim(storage) == ["a"]
    assert claim(storage, T0 + LEASE - timedelta(seconds=1)) == []
    assert claim(storage, T0 + LEASE - timedelta(seconds=1), ignore_schedule=True) == []
    assert claim(storage, T0 + LEASE) == ["a"]


def test_ignore_schedule_and_source_ids(storage: Storage) -> None:
    sync(storage, "a", "b", "c")
    for sid in ("a", "b", "c"):
        poll(storage, sid, [], T0, next_check_at=T0 + timedelta(days=1))
    assert claim(storage) == []
    assert claim(storage, source_ids=["c", "a", "zz"], ignore_schedule=True) == ["a", "c"]
    assert claim(storage, source_ids=[], ignore_schedule=True) == []
    assert claim(storage, ignore_schedule=True) == ["b"]


def test_disabled_sources_are_not_claimed(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(storage, "a", [], T0, disabled_reason="410 Gone", next_check_at=None)
    assert claim(storage, ignore_schedule=True) == ["b"]


def test_claim_returns_state(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [], T0, etag='"e"', error_count=2, next_check_at=T0)
    [state] = storage.claim_due(T0, 10, LEASE)
    assert (state.source_id, state.etag, state.error_count) == ("a", '"e"', 2)


def test_release_and_record_poll_drop_the_lease(storage: Storage) -> None:
    sync(storage, "a", "b")
    assert claim(storage) == ["a", "b"]
    storage.release(["a"])
    storage.release([])
    assert claim(storage) == ["a"]
    poll(storage, "b", [], T0, next_check_at=T0)
    assert claim(storage) == ["b"]


def test_concurrent_claimers_never_share_a_source(storage: Storage, db_url: str) -> None:
    ids = [f"s{n:03d}" for n in range(60)]
    sync(storage, *ids)
    others = [open_storage(db_url), open_storage(db_url)]
    got: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(index: int) -> None:
        try:
            barrier.wait()
            while batch := claim(others[index], limit=3):
                got[index].extend(batch)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    for other in others:
        other.close()
    assert errors == []
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == ids
    assert len(got[0] + got[1]) == len(ids)


# -- polls ----------------------------------------------------------------------------------


def test_storing_the_same_items_twice_changes_nothing(storage: Storage) -> None:
    sync(storage, "a")
    batch = [item(n) for n in range(5)]
    assert poll(storage, "a", batch, T0) == (5, 0, 0)
    first = storage.list_items("a")
    assert poll(storage, "a", batch, T0 + timedelta(hours=1)) == (0, 0, 5)
    assert storage.count_items() == 5
    assert storage.list_items("a") == first


def test_changed_item_is_updated_in_place(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [item(1), item(2)], T0)
    later = T0 + timedelta(hours=1)
    assert poll(storage, "a", [item(1, title="corrected"), item(2)], later) == (0, 1, 1)
    assert storage.count_items("a") == 2
    stored = {s.item.entry_id: s for s in storage.list_items("a")}
    assert stored["entry-1"].item == item(1, title="corrected")
    assert (stored["entry-1"].first_seen, stored["entry-1"].last_changed) == (T0, later)
    assert (stored["entry-2"].first_seen, stored["entry-2"].last_changed) == (T0, T0)


def test_same_entry_twice_in_one_batch_last_wins(storage: Storage) -> None:
    sync(storage, "a")
    assert poll(storage, "a", [item(1, title="old"), item(1, title="new")], T0) == (1, 0, 0)
    [stored] = storage.list_items("a")
    assert stored.item.title == "new"


def test_published_falls_back_to_first_seen(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [item(1, published=None)], T0)
    [stored] = storage.list_items("a")
    assert stored.item.published is None
    assert stored.published == stored.first_seen == T0


def test_later_published_time_replaces_the_fallback(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [item(1, published=None)], T0)
    given = T0 - timedelta(days=1)
    assert poll(storage, "a", [item(1, published=given)], T0 + timedelta(hours=1)) == (0, 1, 0)
    [stored] = storage.list_items("a")
    assert stored.published == stored.item.published == given
    assert stored.first_seen == T0


def test_dropped_published_time_keeps_the_stored_one(storage: Storage) -> None:
    sync(storage, "a")
    given = T0 - timedelta(days=1)
    poll(storage, "a", [item(1, published=given)], T0)
    poll(storage, "a", [item(1, published=None, version="v2")], T0 + timedelta(hours=1))
    [stored] = storage.list_items("a")
    assert stored.published == stored.item.published == given
    assert stored.item.content == "<p>content 1 v2</p>"


def test_state_round_trips_as_aware_utc(storage: Storage) -> None:
    sync(storage, "a")
    local = datetime(2025, 11, 25, 20, 30, 15, 123456, tzinfo=CST)
    state = storage.get_state("a")
    assert state is not None
    wanted = replace(
        state,
        etag='W/"5f"',
        last_modified="Tue, 25 Nov 2025 12:30:15 GMT",
        next_check_at=local + timedelta(minutes=30),
        last_attempt_at=local,
        last_success_at=local,
        last_error="HTTP 500",
        error_count=3,
        disabled_reason=None,
        redirected_to="https://example.org/new.xml",
        publish_interval=5400.5,
    )
    storage.record_poll(wanted, [], log("a", local), T0)
    got = storage.get_state("a")
    assert got == replace(wanted, item_count=0)
    assert got is not None and got.last_attempt_at is not None
    for value in (got.next_check_at, got.last_attempt_at, got.last_success_at):
        assert value is not None and value.tzinfo is UTC
    assert got.last_attempt_at.hour == 12
    [entry] = storage.fetch_log("a")
    assert entry.started_at == local and entry.started_at.tzinfo is UTC


def test_item_count_and_last_new_item_at(storage: Storage) -> None:
    sync(storage, "a")
    t1, t2, t3 = T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    poll(storage, "a", [item(1), item(2), item(3)], t1, item_count=99, last_new_item_at=t3)
    state = storage.get_state("a")
    assert state is not None and (state.item_count, state.last_new_item_at) == (3, t1)
    poll(storage, "a", [item(n) for n in range(1, 5)], t2)
    poll(storage, "a", [item(4), item(2, version="v2")], t3)
    state = storage.get_state("a")
    assert state is not None and (state.item_count, state.last_new_item_at) == (4, t2)


def test_fetch_log_newest_first_with_real_counts(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(storage, "a", [item(1), item(2)], T0)
    poll(storage, "b", [], T0 + timedelta(minutes=1))
    poll(storage, "a", [item(1, version="v2"), item(3)], T0 + timedelta(minutes=2))
    entries = storage.fetch_log()
    assert [(e.source_id, e.started_at) for e in entries] == [
        ("a", T0 + timedelta(minutes=2)),
        ("b", T0 + timedelta(minutes=1)),
        ("a", T0),
    ]
    assert [(e.new_items, e.updated_items) for e in storage.fetch_log("a")] == [(1, 1), (2, 0)]
    assert len(storage.fetch_log("a", limit=1)) == 1
    assert entries[0].bytes == 1234 and entries[0].duration == 0.25 and entries[0].status == 200


def test_list_items_newest_first_with_paging(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(storage, "a", [item(n, "a", published=T0 + timedelta(hours=n)) for n in range(5)], T0)
    poll(
        storage,
        "b",
        [item(n, "b", published=T0 + timedelta(hours=n, minutes=30)) for n in range(3)],
        T0,
    )
    newest = [(s.item.source_id, s.item.entry_id) for s in storage.list_items()]
    assert newest[:4] == [("a", "entry-4"), ("a", "entry-3"), ("b", "entry-2"), ("a", "entry-2")]
    assert len(newest) == 8
    assert [s.item.entry_id for s in storage.list_items("a", limit=2, offset=1)] == [
        "entry-3",
        "entry-2",
    ]
    assert storage.list_items("b", limit=10, offset=3) == []
    assert (storage.count_items(), storage.count_items("a"), storage.count_items("zz")) == (8, 5, 0)


def test_equal_published_times_sort_by_first_seen(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [item(1, published=None)], T0)
    poll(storage, "a", [item(2, published=None)], T0 + timedelta(seconds=1))
    poll(storage, "a", [item(3, published=T0)], T0 + timedelta(seconds=2))
    assert [s.item.entry_id for s in storage.list_items()] == ["entry-2", "entry-3", "entry-1"]


def test_last_success_at(storage: Storage) -> None:
    assert storage.last_success_at() is None
    sync(storage, "a", "b")
    poll(storage, "a", [], T0, last_success_at=T0)
    poll(storage, "b", [], T0, last_success_at=T0 + timedelta(minutes=3))
    assert storage.last_success_at() == T0 + timedelta(minutes=3)


def test_chinese_text_round_trips(storage: Storage) -> None:
    storage.sync_sources([SourceSpec("广州日报", "https://example.org/广州.xml")], T0)
    chinese = replace(
        item(1, "广州日报", title="珠江新城今晨发布暴雨预警"),
        author="记者 李明",
        summary="据广州市气象台消息，……",
        content="<p>市民出行请注意安全。「提醒」</p>",
        categories=("本地", "天气"),
    )
    poll(storage, "广州日报", [chinese], T0, last_error="解析失败：编码错误")
    [stored] = storage.list_items("广州日报")
    assert stored.item == chinese
    state = storage.get_state("广州日报")
    assert state is not None and state.last_error == "解析失败：编码错误"
    assert state.url == "https://example.org/广州.xml"


def test_large_batch(storage: Storage) -> None:
    sync(storage, "a")
    batch = [item(n) for n in range(1200)]
    assert poll(storage, "a", batch, T0) == (1200, 0, 0)
    changed = [item(n, version="v2") if n % 100 == 0 else item(n) for n in range(1250)]
    assert poll(storage, "a", changed, T0 + timedelta(hours=1)) == (50, 12, 1188)
    assert storage.count_items("a") == 1250


def test_failed_poll_stores_nothing(storage: Storage) -> None:
    sync(storage, "a")
    assert claim(storage) == ["a"]
    broken = replace(item(2), title=None)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match=r"record_poll of source 'a'"):
        poll(storage, "a", [item(1), broken], T0, etag='"new"')
    state = storage.get_state("a")
    assert state is not None and state.etag is None
    assert storage.count_items() == 0 and storage.fetch_log() == []
    assert claim(storage, T0 + timedelta(seconds=1)) == []  # still leased


def test_poll_finishing_after_a_url_change_keeps_the_new_url_fresh(storage: Storage) -> None:
    sync(storage, "a")
    [old] = storage.claim_due(T0, 1, LEASE)
    later = T0 + timedelta(minutes=1)
    storage.sync_sources([SourceSpec("a", "https://moved.example.org/")], later)
    outcome = storage.record_poll(
        replace(old, etag='"old"', next_check_at=T0 + timedelta(days=1)),
        [item(1)],
        log("a", T0),
        later,
    )
    assert outcome.new == 1
    state = storage.get_state("a")
    assert state is not None
    assert (state.url, state.etag, state.next_check_at) == (
        "https://moved.example.org/",
        None,
        later,
    )
    assert claim(storage, later) == ["a"]


def test_unknown_source_and_naive_times_are_storage_errors(storage: Storage) -> None:
    ghost = SourceState(source_id="ghost", url="https://example.org/")
    with pytest.raises(StorageError, match=r"record_poll of source 'ghost'.*no such source"):
        storage.record_poll(ghost, [], log("ghost", T0), T0)
    sync(storage, "a")
    with pytest.raises(StorageError, match=r"claim_due failed.*naive"):
        storage.claim_due(datetime(2025, 1, 1), 1, LEASE)


# -- opening --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid database URL"),
        ("mysql://u:secret@localhost/db", "unsupported database 'mysql'"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as caught:
        open_storage(url)
    assert "secret" not in str(caught.value)


def test_unreachable_postgres_is_a_storage_error() -> None:
    store = open_storage("postgresql://feedhub:secret@127.0.0.1:1/feedhub")
    try:
        with pytest.raises(StorageError, match=r"ping failed on .*127\.0\.0\.1:1") as caught:
            store.ping()
        assert "secret" not in str(caught.value)
        assert caught.value.__cause__ is not None
        with pytest.raises(StorageError, match="migrate failed"):
            store.migrate()
    finally:
        store.close()


def test_sqlite_directory_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="cannot create the directory"):
        open_storage(f"sqlite:///{blocker}/feedhub.db")


def test_sqlite_relative_path_wal_and_pragmas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_storage("sqlite:///data/sub/feedhub.db")
    engine = make_engine("sqlite:///data/sub/feedhub.db")
    try:
        store.migrate()
        assert (tmp_path / "data" / "sub" / "feedhub.db").is_file()
        with engine.connect() as conn:
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
        assert pragmas == ["wal", 1, 1, int(BUSY_TIMEOUT_S * 1000)]
    finally:
        store.close()
        engine.dispose()


def test_in_memory_sqlite_works_across_threads() -> None:
    store = open_storage("sqlite://")
    try:
        store.migrate()
        sync(store, "a")
        result: list[list[str]] = []
        thread = threading.Thread(target=lambda: result.append(claim(store)))
        thread.start()
        thread.join()
        assert result == [["a"]]
    finally:
        store.close()


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg3(scheme: str) -> None:
    assert parse(f"{scheme}://u@h/db").drivername == "postgresql+psycopg"


def test_foreign_keys_are_enforced(storage: Storage, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with pytest.raises(IntegrityError, match="(?i)foreign key"), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO fetch_log (source_id, started_at, duration, bytes, new_items,"
                    " updated_items) VALUES ('nope', :t, 0, 0, 0, 0)"
                ),
                {"t": "2025-01-01 00:00:00.000000"},
            )
    finally:
        engine.dispose()


def test_schema_head_constant_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from feedhub.storage.migrations import SCHEMA_HEAD
    from feedhub.storage.sql import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]
