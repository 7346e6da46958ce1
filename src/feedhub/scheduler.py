"""The worker: one APScheduler job ticks the poller; the schedule itself lives in the database.

APScheduler 3 keeps its jobs in memory (its job stores cannot be shared between processes), so
it only drives the clock here: every ``schedule.tick`` the tick job asks storage for due sources
(``claim_due``), which is safe with several workers on one database; a second job retrains the
section classifier. Config reloads arrive through the ``ConfigWatcher`` the worker subscribes
to (the service watches the file and SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from feedhub.config import LoadedConfig, default_user_agent
from feedhub.config_watch import ConfigWatcher
from feedhub.errors import FeedhubError
from feedhub.fetch import Fetcher
from feedhub.pipeline import Poller, source_specs
from feedhub.relate import Relater
from feedhub.search import Indexer
from feedhub.sections import Filer, TrainingError, train
from feedhub.settings import Settings
from feedhub.storage.base import Storage
from feedhub.stories import Clusterer

log = logging.getLogger("feedhub.worker")

RELATE_PER_TICK = 2000  # related lists per tick (a few seconds); the rest wait for the next
PRUNE_EVERY = 3600.0  # seconds between fetch-log prunings
PRUNE_CHUNK = 10_000  # fetch-log lines deleted per transaction
TRAIN_DELAY = 60.0  # first training after start: once the first polls have stored items


class Worker:
    def __init__(
        self,
        config: LoadedConfig | ConfigWatcher,
        storage: Storage,
        *,
        on_new_items: Callable[[], None] | None = None,
    ) -> None:
        self.watcher = config if isinstance(config, ConfigWatcher) else ConfigWatcher(config)
        self.watcher.subscribe(self._apply)
        self.storage = storage
        self.on_new_items = on_new_items
        settings = self.watcher.settings
        self.fetcher = Fetcher(settings.fetch, user_agent=default_user_agent(settings))
        self.clusterer = Clusterer(storage, settings)
        self.filer = Filer(storage, settings)
        self.relater = Relater(storage, settings)
        self.poller = Poller(
            settings,
            storage,
            self.fetcher,
            clusterer=self.clusterer,
            filer=self.filer,
            indexer=Indexer(storage),
            relater=self.relater,
        )
        self.poller.relate_batch = RELATE_PER_TICK
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._tick_task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> Settings:
        return self.watcher.settings

    @property
    def alive(self) -> bool:
        return bool(self.scheduler.running)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then let running polls finish (bounded) and close.

        Signals and the config file are the service's (``feedhub.service.serve``): it sets
        ``stop`` and reloads the watcher this worker subscribed to."""
        self.storage.sync_sources(source_specs(self.settings), datetime.now(UTC))
        self.scheduler.add_job(
            self._start_tick,
            "interval",
            seconds=self.settings.schedule.tick,
            id="tick",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.train,
            "interval",
            seconds=self.settings.categorize.retrain_interval,
            id="train",
            next_run_time=datetime.now(UTC) + timedelta(seconds=TRAIN_DELAY),
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.prune,
            "interval",
            seconds=PRUNE_EVERY,
            id="prune",
            next_run_time=datetime.now(UTC) + timedelta(seconds=TRAIN_DELAY),
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()
        log.info(
            "worker started",
            extra={"sources": len(self.settings.sources), "config": str(self.watcher.config.path)},
        )
        try:
            await stop.wait()
        finally:
            log.info("worker stopping")
            self.scheduler.shutdown(wait=False)
            await self._drain()
            await self.fetcher.aclose()
            self.poller.close()
            log.info("worker stopped")

    async def _start_tick(self) -> None:
        if self._tick_task is not None and not self._tick_task.done():
            return  # the previous tick is still polling
        self._tick_task = asyncio.get_running_loop().create_task(self.tick())

    async def tick(self) -> None:
        deadline = time.monotonic() + self.settings.schedule.lease * 0.8
        try:
            report = await self.poller.poll(deadline=deadline)
        except FeedhubError as exc:
            log.error("tick failed", extra={"error": str(exc)})
            return
        changed = report.new_items or report.updated_items or report.derived
        if changed and self.on_new_items is not None:
            self.on_new_items()
        if report.results:
            log.info(
                "tick done",
                extra={
                    "polled": len(report.results),
                    "new": report.new_items,
                    "errors": report.errors,
                    "seconds": round(report.elapsed, 2),
                },
            )

    async def train(self) -> None:
        """Retrain the section classifier if its training items changed; the next tick files
        recent items again with the new model."""
        if not self.settings.sections:
            return
        try:
            encoder = self.filer.text_encoder()  # one encoder for training and filing
            record = await asyncio.to_thread(
                train, self.storage, self.settings, datetime.now(UTC), encoder=encoder
            )
        except TrainingError as exc:
            log.info("section model not trained", extra={"reason": str(exc)})
            return
        except FeedhubError as exc:
            log.error("section training failed", extra={"error": str(exc)})
            return
        if record is not None:
            await self.poller.cluster()
            if self.on_new_items is not None:
                self.on_new_items()

    async def prune(self) -> int:
        """Delete fetch-log lines older than ``storage.keep_fetch_log``, a chunk per
        transaction so that polls are never held up for long."""
        before = datetime.now(UTC) - timedelta(seconds=self.settings.storage.keep_fetch_log)
        pruned = 0
        try:
            while True:
                done = await asyncio.to_thread(self.storage.prune_fetch_log, before, PRUNE_CHUNK)
                pruned += done
                if done < PRUNE_CHUNK:
                    break
        except FeedhubError as exc:
            log.error("fetch log pruning failed", extra={"error": str(exc)})
        if pruned:
            log.info("fetch log pruned", extra={"lines": pruned, "before": before.isoformat()})
        return pruned

    async def _drain(self) -> None:
        """Let a running tick finish its polls, within the fetch deadline, then cancel it."""
        task = self._tick_task
        if task is None or task.done():
            return
        grace = self.settings.fetch.total_timeout + 5
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _apply(self, old: Settings, new: Settings) -> None:
        """Take new settings: swap the fetcher if its settings changed, sync sources."""
        if new.storage.url != old.storage.url:
            log.warning("storage.url changed: it takes effect on the next restart")
        if new.fetch != old.fetch or default_user_agent(new) != default_user_agent(old):
            old_fetcher = self.fetcher
            self.fetcher = Fetcher(new.fetch, user_agent=default_user_agent(new))
            self.poller.fetcher = self.fetcher
            asyncio.get_running_loop().create_task(self._close_later(old_fetcher))
        self.poller.settings = new
        self.clusterer.apply(new)
        self.filer.apply(new)
        self.relater.apply(new)
        self.storage.sync_sources(source_specs(new), datetime.now(UTC))
        if not self.scheduler.running:
            return
        if new.schedule.tick != old.schedule.tick:
            self.scheduler.reschedule_job("tick", trigger="interval", seconds=new.schedule.tick)
        interval = new.categorize.retrain_interval
        if interval != old.categorize.retrain_interval:
            self.scheduler.reschedule_job("train", trigger="interval", seconds=interval)
        if new.sections != old.sections or new.sources != old.sources:
            self.scheduler.modify_job("train", next_run_time=datetime.now(UTC))

    async def _close_later(self, fetcher: Fetcher) -> None:
        """Close a replaced fetcher once polls that still use it are over."""
        await asyncio.sleep(self.settings.fetch.total_timeout + 5)
        await fetcher.aclose()
