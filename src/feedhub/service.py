"""``feedhub run``: the HTTP server and the worker in one process, or either alone.

Shutdown order on SIGTERM/SIGINT: stop accepting HTTP first, then let running polls finish
(bounded by the fetch deadline), then close storage. SIGHUP reloads the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator
from typing import Literal

import uvicorn

from feedhub.config import LoadedConfig
from feedhub.config_watch import ConfigWatcher
from feedhub.scheduler import Worker
from feedhub.storage.base import Storage
from feedhub.web import create_app

log = logging.getLogger("feedhub.service")

Role = Literal["web", "worker", "all"]


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(
    loaded: LoadedConfig,
    storage: Storage,
    *,
    role: Role = "all",
    host: str | None = None,
    port: int | None = None,
    stop: asyncio.Event | None = None,
    config_check_seconds: float = 2.0,
) -> None:
    stop = stop or asyncio.Event()
    watcher = ConfigWatcher(loaded)
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig, action in (
        (signal.SIGTERM, stop.set),
        (signal.SIGINT, stop.set),
        (signal.SIGHUP, watcher.reload),
    ):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, action)
            handled.append(sig)

    worker: Worker | None = None
    worker_stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    server: _Server | None = None
    server_task: asyncio.Task[None] | None = None
    watch_task: asyncio.Task[None] | None = None
    try:
        if role in ("worker", "all"):
            worker = Worker(watcher, storage)
            worker_task = loop.create_task(worker.run(worker_stop))
        if role in ("web", "all"):
            from feedhub.demo import FEEDS_DIR

            app = create_app(lambda: watcher.settings, storage, worker=worker, demo_dir=FEEDS_DIR)
            watcher.subscribe(lambda old, new: app.invalidate())
            if worker is not None:
                worker.on_new_items = app.invalidate
            web = watcher.settings.web
            config = uvicorn.Config(
                app,
                host=host or web.host,
                port=port or web.port,
                log_config=None,
                access_log=False,
                lifespan="on",
                server_header=False,
                proxy_headers=False,  # the app builds no URLs from the client's address
                timeout_graceful_shutdown=5,
            )
            server = _Server(config)
            server_task = loop.create_task(server.serve())
        watch_task = loop.create_task(watcher.watch(config_check_seconds, stop))
        log.info("feedhub running", extra={"role": role})
        stopped = loop.create_task(stop.wait())
        waiting = [t for t in (stopped, server_task, worker_task) if t is not None]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        for task in done:
            if task is not stopped and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            if task is server_task and not stop.is_set():
                raise RuntimeError("the HTTP server stopped (is the port in use?)")
    finally:
        stop.set()
        if server is not None and server_task is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await server_task
        worker_stop.set()
        if worker_task is not None:
            with contextlib.suppress(Exception):
                await worker_task
        if watch_task is not None:
            watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch_task
        for sig in handled:
            loop.remove_signal_handler(sig)
        log.info("feedhub stopped")
