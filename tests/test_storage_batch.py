"""The storage contract for several polls in one transaction (``record_polls``), on SQLite and
PostgreSQL (fixtures of test_storage)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from feedhub.errors import StorageError
from feedhub.models import Item, SourceSpec, SourceState, StoreOutcome
from feedhub.storage.base import Storage
from tests.test_storage import LEASE, T0, claim, db_url, item, log, storage, sync

__all__ = ["db_url", "storage"]  # fixtures used here

LATER = T0 + timedelta(minutes=10)


def state(store: Storage, source_id: str, **changes: object) -> SourceState:
    found = store.get_state(source_id)
    assert found is not None
    return replace(found, **changes)  # type: ignore[arg-type]


def test_each_poll_is_recorded_as_record_poll_would(storage: Storage) -> None:
    sync(storage, "a", "b", "c")
    assert claim(storage) == ["a", "b", "c"]
    due = T0 + timedelta(hours=1)
    outcomes = storage.record_polls(
        [
            (state(storage, "a", etag='"a1"', next_check_at=due), [], log("a", LATER, 304)),
            (state(storage, "b"), [item(1, "b"), item(2, "b")], log("b", LATER)),
            (state(storage, "c", last_error="boom", error_count=1), [], log("c", LATER, None)),
        ],
        LATER,
    )
    assert outcomes == [StoreOutcome(0, 0, 0), StoreOutcome(2, 0, 0), StoreOutcome(0, 0, 0)]
    a, b, c = (storage.get_state(sid) for sid in "abc")
    assert a is not None and (a.etag, a.next_check_at) == ('"a1"', due)
    assert b is not None and (b.item_count, b.last_new_item_at) == (2, LATER)
    assert c is not None and (c.last_error, c.error_count) == ("boom", 1)
    assert storage.count_items("b") == 2
    lines = {entry.source_id: entry for entry in storage.fetch_log()}
    assert sorted(lines) == ["a", "b", "c"]
    assert (lines["a"].status, lines["a"].new_items) == (304, 0)
    assert (lines["b"].new_items, lines["c"].error) == (2, "boom")
    # Every lease is released: all three can be claimed again.
    assert sorted(claim(storage, LATER, ignore_schedule=True)) == ["a", "b", "c"]


def test_many_polls_without_items(storage: Storage) -> None:
    ids = [f"s{n:03d}" for n in range(120)]
    sync(storage, *ids)
    assert len(claim(storage, limit=200)) == 120
    no_items: list[Item] = []
    polls = [(state(storage, sid, etag=f'"{sid}"'), no_items, log(sid, LATER, 304)) for sid in ids]
    assert storage.record_polls(polls, LATER) == [StoreOutcome(0, 0, 0)] * 120
    assert [s.etag for s in storage.list_states()] == [f'"{sid}"' for sid in ids]
    assert len(storage.fetch_log(limit=500)) == 120
    assert storage.record_polls([], LATER) == []


def test_a_source_moved_meanwhile_keeps_its_new_url_fresh(storage: Storage) -> None:
    sync(storage, "a", "b")
    old_a, old_b = storage.claim_due(T0, 2, LEASE)
    storage.sync_sources(
        [SourceSpec("a", "https://moved.example.org/"), SourceSpec("b", old_b.url)], LATER
    )
    storage.record_polls(
        [
            (replace(old_a, etag='"old"'), [], log("a", T0, 304)),
            (replace(old_b, etag='"b"', next_check_at=LATER + LEASE), [], log("b", T0, 304)),
        ],
        LATER,
    )
    a, b = storage.get_state("a"), storage.get_state("b")
    assert a is not None and (a.url, a.etag) == ("https://moved.example.org/", None)
    assert b is not None and b.etag == '"b"'
    assert len(storage.fetch_log()) == 2
    assert claim(storage, LATER) == ["a"]


def test_one_failing_poll_stores_none_of_the_batch(storage: Storage) -> None:
    sync(storage, "a")
    assert claim(storage) == ["a"]
    ghost = SourceState(source_id="ghost", url="https://example.org/")
    with pytest.raises(StorageError, match="no such source"):
        storage.record_polls(
            [
                (state(storage, "a", etag='"a1"'), [], log("a", LATER, 304)),
                (ghost, [], log("ghost", LATER, 304)),
            ],
            LATER,
        )
    a = storage.get_state("a")
    assert a is not None and a.etag is None
    assert storage.fetch_log() == []
    assert claim(storage, T0 + timedelta(seconds=1)) == []  # still leased


def test_a_caller_bug_is_a_value_error(storage: Storage) -> None:
    sync(storage, "a", "b")
    with pytest.raises(ValueError, match="log line of 'b'"):
        storage.record_polls([(state(storage, "a"), [], log("b", LATER))], LATER)
    with pytest.raises(ValueError, match="item of 'b'"):
        storage.record_polls([(state(storage, "a"), [item(1, "b")], log("a", LATER))], LATER)
    assert storage.fetch_log() == []
