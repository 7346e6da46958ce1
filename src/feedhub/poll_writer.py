"""The poll pipeline's single store thread: every write (and the steps after polls) goes
through it, in order; polls that arrive while it is busy are written together."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

from feedhub.errors import StorageError
from feedhub.models import FetchLogEntry, Item, SourceState, StoreOutcome
from feedhub.storage.base import Placer, Storage

T = TypeVar("T")
WRITE_BATCH = 100  # polls written in one transaction, at most
WRITE_BATCH_ITEMS = 1000  # items written in one transaction, at most (unless one poll has more)
Placing = Callable[[datetime], AbstractContextManager[Placer]]
Poll = tuple[SourceState, Sequence[Item], FetchLogEntry]
_Waiting = tuple[SourceState, Sequence[Item], FetchLogEntry, "asyncio.Future[StoreOutcome]"]


class PollWriter:
    """``placing`` (``Clusterer.placing``), if given, puts new items into stories as they are
    stored; it runs in the store thread, like everything else that touches the clusterer."""

    def __init__(
        self, storage: Storage, clock: Callable[[], datetime], placing: Placing | None = None
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.placing = placing
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="feedhub-store")
        # Polls waiting to be written together (see ``record``).
        self._unwritten: deque[_Waiting] = deque()
        self._task: asyncio.Task[None] | None = None

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the store thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def record(
        self, state: SourceState, items: Sequence[Item], entry: FetchLogEntry
    ) -> StoreOutcome:
        """Store one poll. It joins the polls waiting for the store thread, and they are
        written together in one transaction as soon as it is free (``Storage.record_polls``;
        the new items' first-seen time is the clock's when the batch is written): no poll
        waits longer than it would alone, a cycle of unchanged feeds does not pay one
        transaction and one thread hop per feed, and a cycle of new items writes each index
        page and full-text segment once per batch instead of once per feed."""
        done: asyncio.Future[StoreOutcome] = asyncio.get_running_loop().create_future()
        self._unwritten.append((state, items, entry, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_waiting())
        return await done

    def _next_batch(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        items = 0
        while self._unwritten and len(batch) < WRITE_BATCH:
            size = len(self._unwritten[0][1])
            if batch and items + size > WRITE_BATCH_ITEMS:
                break
            batch.append(self._unwritten.popleft())
            items += size
        return batch

    async def _write_waiting(self) -> None:
        while self._unwritten:
            batch = self._next_batch()
            try:
                outcomes = await self.call(self._write_batch, batch, self.clock())
            except BaseException as exc:
                waiting = batch + list(self._unwritten)
                self._unwritten.clear()
                for *_, done in waiting:
                    if done.done():
                        continue
                    if isinstance(exc, Exception):
                        done.set_exception(StorageError(f"storing polls failed: {exc}"))
                    else:  # cancelled: so are the polls waiting
                        done.cancel()
                if not isinstance(exc, Exception):
                    raise
                return
            for (*_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, BaseException):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)

    def _write_batch(
        self, batch: list[_Waiting], now: datetime
    ) -> Sequence[StoreOutcome | Exception]:
        """In the store thread: all in one transaction, or, if that fails, each on its own so
        that one source's failure is that source's alone."""
        if len(batch) > 1:
            try:
                polls = [(state, items, entry) for state, items, entry, _ in batch]
                return list(self._record(polls, now))
            except Exception:  # noqa: BLE001 -- retried one by one below, where it belongs
                pass
        results: list[StoreOutcome | Exception] = []
        for state, items, entry, _ in batch:
            try:
                results.append(self._record([(state, items, entry)], now)[0])
            except Exception as exc:  # noqa: BLE001 -- handed to that poll
                results.append(exc)
        return results

    def _record(self, polls: Sequence[Poll], now: datetime) -> list[StoreOutcome]:
        """One transaction; new items placed in stories as they are stored, with a placer.
        If it fails, the placer forgets what it placed."""
        if self.placing is None or not any(items for _, items, _ in polls):
            return self._store(polls, now, None)
        with self.placing(now) as placer:
            return self._store(polls, now, placer)

    def _store(
        self, polls: Sequence[Poll], now: datetime, placer: Placer | None
    ) -> list[StoreOutcome]:
        if len(polls) == 1:
            state, items, entry = polls[0]
            return [self.storage.record_poll(state, items, entry, now, placer)]
        return list(self.storage.record_polls(polls, now, placer))
