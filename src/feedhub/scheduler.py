"""The worker: one APScheduler job ticks the poller; the schedule itself lives in the database.

APScheduler 3 keeps its jobs in memory (its job stores cannot be shared between processes), so
it only drives the clock here: every ``schedule.tick`` the tick job asks storage for due sources
(``claim_due``), which is safe with several workers on one database. A second job watches the
config file; SIGHUP reloads it too. A reload is validated first: an invalid file is reported and
the running settings stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from feedhub.config import LoadedConfig, default_user_agent, load_settings
from feedhub.errors import ConfigError, FeedhubError
from feedhub.fetch import Fetcher
from feedhub.pipeline import Poller, source_specs
from feedhub.settings import Settings
from feedhub.storage.base import Storage

log = logging.getLogger("feedhub.worker")

CONFIG_CHECK_SECONDS = 2.0


class Worker:
    def __init__(
        self,
        loaded: LoadedConfig,
        storage: Storage,
        *,
        config_check_seconds: float = CONFIG_CHECK_SECONDS,
    ) -> None:
        self.config = loaded
        self.config_check_seconds = config_check_seconds
        self.storage = storage
        self.fetcher = Fetcher(
            loaded.settings.fetch, user_agent=default_user_agent(loaded.settings)
        )
        self.poller = Poller(loaded.settings, storage, self.fetcher)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.last_tick_at: datetime | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def settings(self) -> Settings:
        return self.config.settings

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set or SIGTERM/SIGINT arrives; then drain and return."""
        stop = stop or self._stopping
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        for sig, action in (
            (signal.SIGTERM, stop.set),
            (signal.SIGINT, stop.set),
            (signal.SIGHUP, self.reload),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, action)
                handled.append(sig)
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
            self._check_config_file, "interval", seconds=self.config_check_seconds, id="config"
        )
        self.scheduler.start()
        log.info(
            "worker started",
            extra={"sources": len(self.settings.sources), "config": str(self.config.path)},
        )
        try:
            await stop.wait()
        finally:
            log.info("worker stopping")
            self.scheduler.shutdown(wait=False)
            await self._drain()
            for sig in handled:
                loop.remove_signal_handler(sig)
            await self.fetcher.aclose()
            self.poller.close()
            log.info("worker stopped")

    async def _start_tick(self) -> None:
        if self._tick_task is not None and not self._tick_task.done():
            return  # the previous tick is still polling
        self._tick_task = asyncio.get_running_loop().create_task(self.tick())

    async def tick(self) -> None:
        self.last_tick_at = datetime.now(UTC)
        deadline = time.monotonic() + self.settings.schedule.lease * 0.8
        try:
            report = await self.poller.poll(deadline=deadline)
        except FeedhubError as exc:
            log.error("tick failed", extra={"error": str(exc)})
            return
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

    async def _check_config_file(self) -> None:
        try:
            mtime = Path(self.config.path).stat().st_mtime_ns
        except OSError:
            return
        if mtime != self.config.mtime_ns:
            self.reload()

    def reload(self) -> None:
        """Re-read the config; keep the running one if the new file is invalid."""
        try:
            loaded = load_settings(self.config.path)
        except ConfigError as exc:
            try:
                mtime = Path(self.config.path).stat().st_mtime_ns
            except OSError:
                mtime = self.config.mtime_ns
            # remember the bad version so it is reported once, not every check
            self.config = LoadedConfig(self.config.path, self.config.settings, mtime)
            log.error(
                "config reload rejected; keeping the running config",
                extra={"config": str(self.config.path), "problems": exc.problems},
            )
            return
        old = self.settings
        new = loaded.settings
        self.config = loaded
        if new.storage.url != old.storage.url:
            log.warning("storage.url changed: it takes effect on the next restart")
        if new.fetch != old.fetch or default_user_agent(new) != default_user_agent(old):
            old_fetcher = self.fetcher
            self.fetcher = Fetcher(new.fetch, user_agent=default_user_agent(new))
            self.poller.fetcher = self.fetcher
            asyncio.get_running_loop().create_task(self._close_later(old_fetcher))
        self.poller.settings = new
        self.storage.sync_sources(source_specs(new), datetime.now(UTC))
        if new.schedule.tick != old.schedule.tick:
            self.scheduler.reschedule_job("tick", trigger="interval", seconds=new.schedule.tick)
        log.info("config reloaded", extra={"sources": len(new.sources)})

    async def _close_later(self, fetcher: Fetcher) -> None:
        """Close a replaced fetcher once polls that still use it are over."""
        await asyncio.sleep(self.settings.fetch.total_timeout + 5)
        await fetcher.aclose()
