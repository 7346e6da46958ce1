"""One poll of many sources: claim due -> fetch -> parse+normalize -> decide -> store.

Fetching is the only parallel step that matters; the fetcher bounds it globally and per host.
Parsing runs in a worker thread (worker processes for big polls) so the event loop keeps pumping
sockets meanwhile, and storage writes go through a single thread: one transaction per source with
items (``Storage.record_poll``); polls without items (304s, errors) that finish while the thread
is busy are written together (``Storage.record_polls``). A source that fails is recorded on that
source and never stops the batch: every exception a poll can raise is turned into that source's
error result here.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import random
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial

from feedhub.config import default_user_agent
from feedhub.core.dates import default_timezone_for
from feedhub.core.schedule import after_error, after_fetched
from feedhub.errors import FeedhubError, RateLimited, SourceGone, StorageError
from feedhub.fetch import Fetcher
from feedhub.models import (
    FetchLogEntry,
    FetchResult,
    ParsedFeed,
    SourceSpec,
    SourceState,
)
from feedhub.parse_worker import PRELOAD, lower_priority, parse_job
from feedhub.poll_report import AfterPoll, PollReport, PollResult
from feedhub.poll_writer import PollWriter
from feedhub.relate import Relater
from feedhub.search import Indexer
from feedhub.sections import Filer
from feedhub.settings import Settings, Source
from feedhub.storage.base import Storage
from feedhub.stories import Clusterer

log = logging.getLogger("feedhub.poll")
CLUSTER_EVERY = 1000  # new items between clustering runs during a long poll
RELATE_DURING_POLL = 200  # related lists computed per run while polls still need the store
PROCESS_POOL_FROM = 50  # sources in one poll from which parsing moves to worker processes

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def source_specs(settings: Settings) -> list[SourceSpec]:
    return [SourceSpec(s.id, s.url) for s in settings.sources]


class Poller:
    """Polls claimed sources; ``settings`` may be swapped for new ones on a config reload."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        fetcher: Fetcher,
        *,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        clusterer: Clusterer | None = None,
        filer: Filer | None = None,
        indexer: Indexer | None = None,
        relater: Relater | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.fetcher = fetcher
        self.clusterer = clusterer
        self.filer = filer
        self.indexer = indexer
        self.relater = relater
        self.relate_batch: int | None = None  # related lists after a poll (None: every due one)
        self.clock = clock
        self.rng = rng or random.Random()
        self.writer = PollWriter(storage, clock, clusterer.placing if clusterer else None)
        self._parse_threads = ThreadPoolExecutor(2, thread_name_prefix="feedhub-parse")
        self._parse_processes: ProcessPoolExecutor | None = None
        self._executor: Executor = self._parse_threads

    def close(self) -> None:
        self.writer.close()
        self._parse_threads.shutdown(wait=True)
        if self._parse_processes is not None:
            self._parse_processes.shutdown(wait=True, cancel_futures=True)
            self._parse_processes = None

    def _parse_executor(self, sources: int) -> Executor:
        """Threads for small polls; worker processes for big ones, where parsing (mostly
        feedparser, pure Python) is most of the work and a second core halves the time."""
        workers = self.settings.fetch.parse_processes
        if workers == 0 or sources < PROCESS_POOL_FROM:
            return self._parse_threads
        if self._parse_processes is None:
            context = multiprocessing.get_context("forkserver")
            # Workers fork from a server that has imported the parser once (no effect if that
            # server is already running).
            context.set_forkserver_preload(PRELOAD)
            self._parse_processes = ProcessPoolExecutor(
                workers, mp_context=context, initializer=lower_priority
            )
        return self._parse_processes

    async def poll(
        self,
        *,
        source_ids: Collection[str] | None = None,
        ignore_schedule: bool = False,
        on_start: Callable[[int], None] | None = None,
        on_result: Callable[[PollResult], None] | None = None,
        deadline: float | None = None,
    ) -> PollReport:
        """Poll what is due (or everything in ``source_ids`` / enabled, with ``ignore_schedule``).

        Claims in batches so that several pollers can share one database, until nothing is
        left to claim or ``deadline`` (a ``time.monotonic()`` value) passes.
        """
        started = time.monotonic()
        report = PollReport()
        enabled = {s.id: s for s in self.settings.sources if s.enabled}
        wanted = set(enabled) if source_ids is None else set(source_ids) & set(enabled)
        if not wanted:
            return report
        self._executor = self._parse_executor(len(wanted))
        batch = max(self.settings.fetch.concurrency * 4, 64)
        lease = timedelta(seconds=self.settings.schedule.lease)
        seen: set[str] = set()
        running: dict[asyncio.Task[PollResult], str] = {}
        # Finished polls arrive here: asyncio.wait() would add and remove a callback on every
        # running poll each time one finishes, which a cycle of fast 304s notices.
        finished: asyncio.Queue[asyncio.Task[PollResult]] = asyncio.Queue()
        exhausted = False
        new_since_cluster = 0
        cluster_task: asyncio.Task[AfterPoll] | None = None
        try:
            while True:
                # Keep the pipe full: claim more as soon as half the claimed polls are done, so
                # fetching never waits for the slowest source of a batch.
                in_time = deadline is None or time.monotonic() < deadline
                if not exhausted and in_time and len(running) <= batch // 2:
                    claimed = await self._claim(
                        wanted - seen, batch - len(running), lease, ignore_schedule
                    )
                    if not claimed:
                        exhausted = True
                    else:
                        if on_start is not None:
                            on_start(len(claimed))
                        for state in claimed:
                            seen.add(state.source_id)
                            poll = asyncio.create_task(
                                self.poll_one(state, enabled[state.source_id])
                            )
                            poll.add_done_callback(finished.put_nowait)
                            running[poll] = state.source_id
                elif not in_time:
                    exhausted = True
                if not running:
                    break
                done = [await finished.get()]
                while not finished.empty():
                    done.append(finished.get_nowait())
                for task in done:
                    del running[task]
                    result = task.result()
                    report.results.append(result)
                    new_since_cluster += result.new
                    if on_result is not None:
                        on_result(result)
                # Cluster as items pile up, while the network is busy, not all at the end.
                if new_since_cluster >= CLUSTER_EVERY and (
                    cluster_task is None or cluster_task.done()
                ):
                    if cluster_task is not None:
                        report.add(cluster_task.result())
                    new_since_cluster = 0
                    cluster_task = asyncio.create_task(self.cluster(RELATE_DURING_POLL))
        except BaseException:
            for pending in running:
                pending.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            if running:
                self.storage.release(set(running.values()))
            raise
        finally:
            if cluster_task is not None:
                report.add(await cluster_task)
        if ignore_schedule:
            report.busy = len(wanted - seen)
        report.add(await self.cluster(self.relate_batch))
        report.elapsed = time.monotonic() - started
        return report

    async def cluster(self, relate_limit: int | None = None) -> AfterPoll:
        """Put new items into stories, file them under sections, index them for search and
        compute related reading for up to ``relate_limit`` stories (all due: None), in the
        storage thread after the writes. Related reading costs milliseconds per story, so a
        worker bounds it per tick (the rest waits in the queue) rather than hold the store from
        the next polls."""
        relater = self.relater
        steps: tuple[tuple[str, Callable[[datetime], int] | None], ...] = (
            ("clustering", self._cluster if self.clusterer else None),
            ("filing", self.filer.run if self.filer else None),
            ("search indexing", self.indexer.run if self.indexer else None),
            ("related reading", partial(relater.run, limit=relate_limit) if relater else None),
        )
        counts = []
        for name, run in steps:
            done = 0
            if run is not None:
                try:
                    done = await self.writer.call(run, self.clock())
                except FeedhubError as exc:
                    log.error(f"{name} failed", extra={"error": str(exc)})
            counts.append(done)
        return AfterPoll(*counts)

    def _cluster(self, now: datetime) -> int:
        """Items placed in stories as they were stored, and those clustered now."""
        assert self.clusterer is not None
        return self.clusterer.take_placed() + self.clusterer.run(now)

    async def _claim(
        self, ids: set[str], limit: int, lease: timedelta, ignore_schedule: bool
    ) -> list[SourceState]:
        if not ids:
            return []
        now = self.clock()
        result = await self.writer.call(
            lambda: self.storage.claim_due(now, limit, lease, ids, ignore_schedule=ignore_schedule)
        )
        assert isinstance(result, list)
        return result

    async def poll_one(self, state: SourceState, source: Source) -> PollResult:
        """Fetch, parse and store one source. Never raises except on cancellation."""
        started_at = self.clock()
        t0 = time.monotonic()
        schedule = self.settings.schedule
        fetched: FetchResult | None = None
        try:
            fetched = await self.fetcher.fetch(
                source.url, etag=state.etag, last_modified=state.last_modified
            )
            feed: ParsedFeed | None = None
            if not fetched.not_modified:
                tz = source.timezone or self.settings.site.timezone
                feed = await asyncio.get_running_loop().run_in_executor(
                    self._executor,
                    parse_job,
                    fetched.content or b"",
                    dict(fetched.headers),
                    fetched.url,
                    source.id,
                    started_at,
                    tz or default_timezone_for(self.settings.site.language),
                    source.encoding,
                    # fingerprints and search terms are worth making beside the parse only in
                    # worker processes (they use the other cores); otherwise they come later
                    self.clusterer.dedupe
                    if self.clusterer is not None and self._executor is not self._parse_threads
                    else None,
                    self._executor is not self._parse_threads,
                )
            now = self.clock()
            new_state = after_fetched(
                state,
                now,
                schedule,
                interval=source.interval,
                feed=feed,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                headers=fetched.headers,
                permanent_redirect=fetched.permanent_redirect,
                rng=self.rng,
            )
            size = len(fetched.content or b"")
            entry = FetchLogEntry(
                source.id, started_at, time.monotonic() - t0, fetched.status, size, 0, 0, None
            )
            items = feed.items if feed else ()
            outcome = await self.writer.record(new_state, items, entry)
            new, updated = outcome.new, outcome.updated
            result = PollResult(
                source.id,
                "not_modified" if fetched.not_modified else "ok",
                fetched.status,
                new,
                updated,
                duration=time.monotonic() - t0,
                bytes=size,
                warnings=feed.warnings if feed else (),
                redirected_to=fetched.permanent_redirect,
            )
            log.info(
                "polled",
                extra={
                    "source": source.id,
                    "status": fetched.status,
                    "new": new,
                    "updated": updated,
                    "bytes": size,
                    "ms": round(result.duration * 1000, 1),
                    **(
                        {"redirect": fetched.permanent_redirect}
                        if fetched.permanent_redirect
                        else {}
                    ),
                    **({"warnings": len(result.warnings)} if result.warnings else {}),
                },
            )
            return result
        except asyncio.CancelledError:
            raise
        except StorageError as exc:
            # The database itself failed: nothing about the source can be recorded.
            log.error("storage failed", extra={"source": source.id, "error": str(exc)})
            await self._release(source.id)
            return PollResult(source.id, "error", error=str(exc), duration=time.monotonic() - t0)
        except Exception as exc:  # one source must never stop the batch
            return await self._record_failure(state, source, exc, fetched, started_at, t0)

    async def _record_failure(
        self,
        state: SourceState,
        source: Source,
        exc: Exception,
        fetched: FetchResult | None,
        started_at: datetime,
        t0: float,
    ) -> PollResult:
        if isinstance(exc, FeedhubError):
            message = str(exc)
        else:  # a bug, not a bad feed: keep the traceback in the log
            message = f"internal error: {type(exc).__name__}: {exc}"
            log.exception("poll crashed", extra={"source": source.id})
        status = getattr(exc, "status", None) or (fetched.status if fetched else None)
        gone = isinstance(exc, SourceGone)
        now = self.clock()
        new_state = after_error(
            state,
            now,
            self.settings.schedule,
            message=message,
            retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
            gone=gone,
            rng=self.rng,
        )
        duration = time.monotonic() - t0
        size = len(fetched.content or b"") if fetched else 0
        entry = FetchLogEntry(source.id, started_at, duration, status, size, 0, 0, message)
        log.warning(
            "poll failed",
            extra={
                "source": source.id,
                "status": status,
                "error": message,
                "kind": type(exc).__name__,
                "errors_in_a_row": new_state.error_count,
                "next_check_at": new_state.next_check_at,
            },
        )
        try:
            await self.writer.record(new_state, (), entry)
        except StorageError as store_exc:
            log.error("storage failed", extra={"source": source.id, "error": str(store_exc)})
        return PollResult(
            source.id,
            "gone" if gone else "error",
            status,
            error=message,
            duration=duration,
            bytes=size,
        )

    async def _release(self, source_id: str) -> None:
        try:
            await self.writer.call(self.storage.release, [source_id])
        except StorageError:
            pass


async def poll_sources(
    settings: Settings,
    storage: Storage,
    *,
    source_ids: Collection[str] | None = None,
    ignore_schedule: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[PollResult], None] | None = None,
    clock: Clock = utcnow,
) -> PollReport:
    """Sync the configured sources into storage, then poll them once (the CLI's ``poll``)."""
    storage.sync_sources(source_specs(settings), clock())
    async with Fetcher(settings.fetch, user_agent=default_user_agent(settings)) as fetcher:
        clusterer = Clusterer(storage, settings)
        poller = Poller(
            settings,
            storage,
            fetcher,
            clock=clock,
            clusterer=clusterer,
            filer=Filer(storage, settings),
            indexer=Indexer(storage),
            relater=Relater(storage, settings),
        )
        try:
            return await poller.poll(
                source_ids=source_ids,
                ignore_schedule=ignore_schedule,
                on_start=on_start,
                on_result=on_result,
            )
        finally:
            poller.close()
