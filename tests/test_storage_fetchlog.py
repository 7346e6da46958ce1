"""Fetch counts per outcome and fetch-log pruning, on SQLite and PostgreSQL (fixtures of
test_storage)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from feedhub.models import Item
from feedhub.storage import open_storage
from feedhub.storage.base import Storage
from feedhub.storage.engine import make_engine
from feedhub.storage.sql import MIGRATIONS
from tests.test_storage import T0, db_url, item, log, storage, sync

__all__ = ["db_url", "storage"]  # fixtures used here


def record(
    store: Storage, source_id: str, minutes: int, status: int | None, *, items: Sequence[Item] = ()
) -> None:
    state = store.get_state(source_id)
    assert state is not None
    entry = log(source_id, T0 + timedelta(minutes=minutes), status)
    if status == 304:
        entry = replace(entry, error=None)
    store.record_poll(state, list(items), entry, T0 + timedelta(minutes=minutes))


def test_outcomes_are_counted_per_source_as_polls_are_recorded(storage: Storage) -> None:
    sync(storage, "a", "b", "c")
    record(storage, "a", 1, 200, items=[item(1)])
    record(storage, "a", 2, 304)
    record(storage, "a", 3, 304)
    record(storage, "b", 1, 500)
    # polls without items recorded together count the same
    polls = []
    for sid, status in (("b", 304), ("c", 200), ("c", None)):
        state = storage.get_state(sid)
        assert state is not None
        entry = log(sid, T0 + timedelta(minutes=5), status)
        polls.append((state, [], replace(entry, error=None) if status == 304 else entry))
    storage.record_polls(polls, T0 + timedelta(minutes=5))
    assert storage.fetch_outcomes() == {
        ("a", "ok"): 1,
        ("a", "not_modified"): 2,
        ("b", "error"): 1,
        ("b", "not_modified"): 1,
        ("c", "ok"): 1,
        ("c", "error"): 1,
    }


def test_pruning_drops_old_lines_only_and_keeps_the_counts(storage: Storage) -> None:
    sync(storage, "a", "b")
    for minute in range(10):
        record(storage, "a", minute, 304)
    record(storage, "b", 3, 500)
    counts = storage.fetch_outcomes()
    cut = T0 + timedelta(minutes=5)
    assert storage.prune_fetch_log(cut, limit=4) == 4  # oldest first, at most the limit
    assert sorted(e.started_at for e in storage.fetch_log(limit=100))[0] == T0 + timedelta(
        minutes=3
    )
    assert storage.prune_fetch_log(cut) == 2  # the other line of minute 3, and minute 4
    assert storage.prune_fetch_log(cut) == 0
    assert all(e.started_at >= cut for e in storage.fetch_log(limit=100))
    assert len(storage.fetch_log(limit=100)) == 5
    assert storage.fetch_outcomes() == counts


def test_migration_fills_the_counts_from_the_existing_log(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.set_main_option("path_separator", "os")
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
            conn.execute(text("INSERT INTO sources (id, url) VALUES ('a', 'u'), ('b', 'v')"))
            for sid, status, error in [
                ("a", 200, None),
                ("a", 304, None),
                ("a", 304, None),
                ("a", None, "timed out"),
                ("b", 500, "HTTP 500"),
            ]:
                conn.execute(
                    text(
                        "INSERT INTO fetch_log (source_id, started_at, duration, status, error) "
                        "VALUES (:s, :t, 0.1, :st, :e)"
                    ),
                    {"s": sid, "t": T0, "st": status, "e": error},
                )
    finally:
        engine.dispose()
    store = open_storage(db_url)
    try:
        store.migrate()
        assert store.fetch_outcomes() == {
            ("a", "ok"): 1,
            ("a", "not_modified"): 2,
            ("a", "error"): 1,
            ("b", "error"): 1,
        }
    finally:
        store.close()
