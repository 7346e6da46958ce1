"""``feedhub run``: the HTTP server and the worker in one process, or either alone.

Shutdown order on SIGTERM/SIGINT: stop accepting HTTP first, then let running polls finish
(bounded by the fetch deadline), then close storage. SIGHUP reloads the config. The HTTP server
is uvicorn with a protocol that answers feed readers' polls of cached feeds itself
(``FeedProtocol``); bench/SERVE.md has the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Generator
from typing import Literal

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from feedhub.config import LoadedConfig
from feedhub.config_watch import ConfigWatcher
from feedhub.scheduler import Worker
from feedhub.storage.base import Storage
from feedhub.web import FeedhubApp, create_app
from feedhub.web.cache import Variant, header_lines

log = logging.getLogger("feedhub.service")

Role = Literal["web", "worker", "all"]


class FeedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering cached feed requests itself.

    A feed reader's poll of a feed already rendered (GET or HEAD, no query) is answered from
    ``FeedhubApp.cached_feed`` as soon as the request is complete: status line, uvicorn's default
    headers (Date), the representation's prebuilt header lines and the body in one writev, with
    uvicorn's keep-alive rules and end-of-response bookkeeping. That skips the ASGI round (scope,
    task, event, per-header checks on the way out), which cost several times the answer itself.
    Anything else, or a request arriving while an earlier response on the same connection is
    still under way, takes uvicorn's ordinary path to the app, so responses stay in order; the
    HTTP behaviour (ETag, 304, gzip, Vary, Cache-Control, HEAD) is the app's in both cases.

    Two more per-request costs go: the ASGI scope is built only for requests that need one, and
    the keep-alive timeout is one timer per idle spell rather than a timer made and cancelled per
    request (it fires, finds the connection busy or idle for less than the timeout, and re-arms).

    This leans on ``HttpToolsProtocol``'s internals (its parser callbacks, ``cycle``,
    ``pipeline``, ``flow``, the keep-alive timer); tests/test_web.py runs it against the installed
    uvicorn (written for 0.54) with raw sockets.
    """

    feeds: FeedhubApp  # set on the subclass made for one app (``protocol_for``)

    # A request answered here: (status, representation, HEAD, keep-alive, started)
    _answer: tuple[int, Variant, bool, bool, float] | None = None
    _date: tuple[list[tuple[bytes, bytes]], bytes] = ([], b"")
    _idle_since: float | None = None  # loop time the last response ended; None: busy

    def on_message_begin(self) -> None:
        self._answer = None
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        url = self.url
        parser = self.parser
        method = parser.get_method()
        if (
            (method == b"GET" or method == b"HEAD")
            and url[:7] == b"/feeds/"
            and b"?" not in url
            and not self.expect_100_continue
            and not parser.should_upgrade()
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
            and not self.flow.write_paused
            and self.limit_concurrency is None
            and not self.transport.is_closing()
        ):
            started = time.perf_counter()
            answer = self.feeds.cached_feed(url, self.headers)
            if answer is not None:
                keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
                self._answer = (*answer, method == b"HEAD", keep_alive, started)
                return  # answered once the request is complete
        # uvicorn's way: its scope (built here, with what the parser gave so far), then the app
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._answer is None:
            super().on_body(body)  # a GET's body, if any, means nothing to a feed

    def on_message_complete(self) -> None:
        answer = self._answer
        if answer is None:
            super().on_message_complete()
            return
        self._answer = None
        status, variant, head_only, keep_alive, started = answer
        defaults = self.server_state.default_headers
        date = self._date
        if date[0] is not defaults:  # a new list every second (the Date header)
            date = self._date = (defaults, header_lines(defaults))
        if status == 304:
            parts = [STATUS_LINE[304], date[1], variant.common_lines]
        else:
            parts = [STATUS_LINE[status], date[1], variant.full_lines]
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        transport = self.transport
        if status != 304 and not head_only:  # one writev, and the body is not copied
            transport.writelines([b"".join(parts), variant.body])
        else:
            transport.write(b"".join(parts))
        if not keep_alive:
            transport.close()
        self.feeds.metrics.observe("feed", status, time.perf_counter() - started)
        self.on_response_complete()

    # --- keep-alive: one timer per idle spell -------------------------------------------------

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # data arrived, or a response is ending: not idle

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._idle_since = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._keep_alive_due
            )

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        idle = self._idle_since
        if idle is None:
            return  # a request under way; the next response end arms the timer again
        left = idle + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None


def protocol_for(app: FeedhubApp) -> type[FeedProtocol]:
    return type("FeedProtocol", (FeedProtocol,), {"feeds": app})


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def web_server(
    app: FeedhubApp, host: str, port: int, *, timeout_keep_alive: float = 5
) -> uvicorn.Server:
    """The HTTP server as ``feedhub run`` starts it (``serve()`` awaits its ``serve()``)."""
    config = uvicorn.Config(
        app,
        http=protocol_for(app),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
        proxy_headers=False,  # the app builds no URLs from the client's address
        timeout_graceful_shutdown=5,
        timeout_keep_alive=timeout_keep_alive,  # type: ignore[arg-type]  # used as a float
    )
    return _Server(config)


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
    server: uvicorn.Server | None = None
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
            server = web_server(app, host or web.host, port or web.port)
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
