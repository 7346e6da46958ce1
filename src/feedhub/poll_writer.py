"""The poll pipeline's single store thread: every write (and the steps after polls) goes
through it, in order; polls without items that arrive while it is busy are written together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from feedhub.errors import StorageError
from feedhub.models import FetchLogEntry, Item, SourceState, StoreOutcome
from feedhub.storage.base import Storage

T = TypeVar("T")
WRITE_BATCH = 100  # polls without items written in one transaction, at most


class PollWriter:
    def __init__(self, storage: Storage, clock: Callable[[], datetime]) -> None:
        self.storage = storage
        self.clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="feedhub-store")
        # Polls without items waiting to be written together (see ``record``).
        self._unwritten: list[tuple[SourceState, FetchLogEntry, asyncio.Future[StoreOutcome]]] = []
        self._task: asyncio.Task[None] | None = None

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the store thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def record(
        self, state: SourceState, items: Sequence[Item], entry: FetchLogEntry, now: datetime
    ) -> StoreOutcome:
        """Store one poll. A poll without items (a 304, an error) joins the others waiting
        for the store thread, and they are written together in one transaction as soon as it
        is free (``Storage.record_polls``): no poll waits longer than it would alone, and a
        cycle of unchanged feeds does not pay one transaction and one thread hop per feed."""
        if items:
            return await self.call(self.storage.record_poll, state, items, entry, now)
        done: asyncio.Future[StoreOutcome] = asyncio.get_running_loop().create_future()
        self._unwritten.append((state, entry, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_waiting())
        return await done

    async def _write_waiting(self) -> None:
        while self._unwritten:
            batch, self._unwritten = self._unwritten[:WRITE_BATCH], self._unwritten[WRITE_BATCH:]
            try:
                outcomes = await self.call(self._write_batch, batch, self.clock())
            except BaseException as exc:
                waiting, self._unwritten = batch + self._unwritten, []
                for _, _, done in waiting:
                    if done.done():
                        continue
                    if isinstance(exc, Exception):
                        done.set_exception(StorageError(f"storing polls failed: {exc}"))
                    else:  # cancelled: so are the polls waiting
                        done.cancel()
                if not isinstance(exc, Exception):
                    raise
                return
            for (_, _, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, BaseException):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)

    def _write_batch(
        self,
        batch: list[tuple[SourceState, FetchLogEntry, asyncio.Future[StoreOutcome]]],
        now: datetime,
    ) -> list[StoreOutcome | Exception]:
        """In the store thread: all in one transaction, or, if that fails, each on its own so
        that one source's failure is that source's alone."""
        if len(batch) > 1:
            try:
                polls = [(state, (), entry) for state, entry, _ in batch]
                return list(self.storage.record_polls(polls, now))
            except Exception:  # noqa: BLE001 -- retried one by one below, where it belongs
                pass
        results: list[StoreOutcome | Exception] = []
        for state, entry, _ in batch:
            try:
                results.append(self.storage.record_poll(state, (), entry, now))
            except Exception as exc:  # noqa: BLE001 -- handed to that poll
                results.append(exc)
        return results
