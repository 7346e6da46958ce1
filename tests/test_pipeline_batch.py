"""Polls without items (304s, errors) are stored together, and one source's storage failure
stays that source's: the pipeline's group commit over real SQLite, with a fetcher that answers
304 at once (the HTTP side is tested in test_fetch.py and test_pipeline.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from feedhub.errors import StorageError
from feedhub.fetch import Fetcher
from feedhub.models import FetchLogEntry, FetchResult, Item, SourceState, StoreOutcome
from feedhub.pipeline import Poller, source_specs
from feedhub.settings import Settings
from feedhub.storage.base import Placer, Storage

SOURCES = [f"s{n:02d}" for n in range(20)]
LEASE = timedelta(minutes=5)


class NotModified:
    """Answers every fetch with a 304 carrying a new ETag, without any network."""

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        return FetchResult(url, url, 304, None, {"etag": f'"{url}"'}, 0.0, etag=f'"{url}"')


class Recording:
    """The real storage, recording how polls were written, failing for the ``broken`` source."""

    def __init__(self, inner: Storage, broken: str | None = None) -> None:
        self.inner = inner
        self.broken = broken
        self.batches: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def record_polls(
        self,
        polls: Sequence[tuple[SourceState, Sequence[Item], FetchLogEntry]],
        now: datetime,
        placer: Placer | None = None,
    ) -> list[StoreOutcome]:
        self.batches.append(len(polls))
        if any(state.source_id == self.broken for state, _, _ in polls):
            raise StorageError("record_polls failed: disk I/O error")
        return self.inner.record_polls(polls, now, placer)

    def record_poll(
        self,
        state: SourceState,
        items: Sequence[Item],
        log: FetchLogEntry,
        now: datetime,
        placer: Placer | None = None,
    ) -> StoreOutcome:
        self.batches.append(1)
        if state.source_id == self.broken:
            raise StorageError(f"record_poll of source {state.source_id!r} failed")
        return self.inner.record_poll(state, items, log, now, placer)


def poll(storage: Storage, recording: Recording) -> Any:
    settings = Settings.model_validate(
        {"sources": [{"id": s, "name": s, "url": f"https://{s}.example.org/feed"} for s in SOURCES]}
    )
    storage.sync_sources(source_specs(settings), datetime.now(UTC))

    async def run() -> Any:
        poller = Poller(settings, cast(Storage, recording), cast(Fetcher, NotModified()))
        try:
            return await poller.poll(ignore_schedule=True)
        finally:
            poller.close()

    return asyncio.run(run())


def test_unchanged_feeds_are_written_together(storage: Storage) -> None:
    recording = Recording(storage)
    report = poll(storage, recording)
    assert report.not_modified == len(SOURCES) and report.errors == 0
    assert sum(recording.batches) == len(SOURCES)
    assert max(recording.batches) > 1  # fewer transactions than polls
    assert [s.etag for s in storage.list_states()] == [
        f'"https://{s}.example.org/feed"' for s in SOURCES
    ]
    assert len(storage.fetch_log(limit=100)) == len(SOURCES)
    # Every lease was released.
    assert len(storage.claim_due(datetime.now(UTC), 100, LEASE, ignore_schedule=True)) == 20


def test_a_failing_source_does_not_take_the_batch_down(storage: Storage) -> None:
    recording = Recording(storage, broken="s07")
    report = poll(storage, recording)
    assert (report.not_modified, report.errors) == (len(SOURCES) - 1, 1)
    failed = [r for r in report.results if r.status == "error"]
    assert [r.source_id for r in failed] == ["s07"]
    assert failed[0].error is not None and "s07" in failed[0].error
    assert {line.source_id for line in storage.fetch_log(limit=100)} == set(SOURCES) - {"s07"}
    broken = storage.get_state("s07")
    assert broken is not None and broken.etag is None
    # Its lease was released: it can be claimed again at once.
    claimed = storage.claim_due(datetime.now(UTC), 100, LEASE, ignore_schedule=True)
    assert sorted(s.source_id for s in claimed) == SOURCES
