"""A real HTTP/1.1 server on 127.0.0.x for fetcher tests, running its own event loop in a thread.

The fetcher must be tested against real sockets: timeouts, aborted bodies, refused addresses and
keep-alive only show up there. Running the server on a separate loop keeps it independent of
pytest-asyncio's per-test loops, so one server serves a whole module.

Behaviour is chosen by path and query string (see ``_ROUTES``); every request is recorded with its
headers, and each listener counts the connections it accepted.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import ssl
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

FEED = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>t</title>'
    + b"".join(f"<item><title>item {i}</title><guid>g{i}</guid></item>".encode() for i in range(40))
    + b"</channel></rss>\n"
)
ETAG = '"v1"'
LAST_MODIFIED = "Tue, 25 Nov 2025 08:00:00 GMT"
_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    404: "Not Found",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Recorded:
    listener: str  # the local address that accepted the connection
    connection: int  # connection number on this server
    target: str
    path: str
    headers: dict[str, str]  # lower-case names


@dataclass
class _Request:
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    reader: asyncio.StreamReader


@dataclass
class Stats:
    """Counters the handlers update; read them from the test thread after the fetch."""

    connections: dict[str, int] = field(default_factory=dict)  # per listener address
    active: int = 0
    max_active: int = 0
    body_bytes_sent: dict[str, int] = field(default_factory=dict)  # per path, streamed bodies
    finished: dict[str, threading.Event] = field(default_factory=dict)
    sni: list[str | None] = field(default_factory=list)


class _Closed(Exception):
    """The client went away while a handler was writing."""


Handler = Callable[["LocalHTTPServer", _Request, asyncio.StreamWriter], Awaitable[bool]]


class LocalHTTPServer:
    """``url(path, host=...)`` builds URLs; ``requests`` and ``stats`` show what happened.

    Every host listens on the same ``port``: a connection that reaches the wrong address is
    served and recorded there, rather than refused.
    """

    def __init__(
        self, hosts: tuple[str, ...] = ("127.0.0.1",), tls: ssl.SSLContext | None = None
    ) -> None:
        self._hosts = hosts
        self._tls = tls
        self.port = 0
        self.requests: list[Recorded] = []
        self.stats = Stats()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._connection_ids = 0
        if tls is not None:
            tls.sni_callback = self._record_sni

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.stats.sni.append(name)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)
        return self

    async def _listen(self) -> None:
        """Listen on one port on every host, so that only the address tells them apart."""
        for _attempt in range(20):
            port = 0
            try:
                for host in self._hosts:
                    server = await asyncio.start_server(
                        lambda r, w, h=host: self._serve(h, r, w), host, port, ssl=self._tls
                    )
                    self._servers.append(server)
                    port = server.sockets[0].getsockname()[1]
            except OSError:  # the port is taken on another address: try another one
                for server in self._servers:
                    server.close()
                self._servers.clear()
                continue
            self.port = port
            return
        raise RuntimeError("no port free on all of " + ", ".join(self._hosts))

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            # Aborted connections end their handlers; cancel only what is still asleep.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            _done, pending = await asyncio.wait(tasks, timeout=1) if tasks else (set(), set())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def reset(self) -> None:
        self.requests.clear()
        self.stats = Stats()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def finished(self, path: str) -> threading.Event:
        """Set when the streaming handler for ``path`` has stopped sending."""
        return self.stats.finished.setdefault(path, threading.Event())

    # -- connection handling ---------------------------------------------------------------

    async def _serve(
        self, listener: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._connection_ids += 1
        connection = self._connection_ids
        self.stats.connections[listener] = self.stats.connections.get(listener, 0) + 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request = _parse(head, reader)
                self.requests.append(
                    Recorded(listener, connection, request.target, request.path, request.headers)
                )
                handler = _ROUTES.get(request.path, _not_found)
                try:
                    keep_alive = await handler(self, request, writer)
                except (_Closed, ConnectionError):
                    return
                if not keep_alive or request.headers.get("connection", "").lower() == "close":
                    return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> bool:
        if status == 304:
            body = b""  # a 304 has no body, whatever the handler passed
        all_headers = {"Content-Length": str(len(body))} if status != 304 else {}
        all_headers.update(headers or {})
        writer.write(_head(status, all_headers) + body)
        await writer.drain()
        return True


def _parse(head: bytes, reader: asyncio.StreamReader) -> _Request:
    lines = head.decode("latin-1").split("\r\n")
    _method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    parts = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return _Request(target, parts.path, query, headers, reader)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- handlers: each returns whether the connection may be kept alive --------------------------


async def _feed(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """200 with validators; 304 when the request's validators match.

    ``only=etag|lm`` sends one validator; ``close=1`` closes the connection after answering.
    """
    only = req.query.get("only")
    validators: dict[str, str] = {}
    if only in (None, "etag"):
        validators["ETag"] = req.query.get("etag", ETAG)
    if only in (None, "lm"):
        validators["Last-Modified"] = LAST_MODIFIED
    inm = req.headers.get("if-none-match")
    ims = req.headers.get("if-modified-since")
    if "ETag" in validators and inm is not None:
        tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
        if validators["ETag"] in tags or "*" in tags:
            return await server.send(writer, 304, validators)
    elif "Last-Modified" in validators and ims is not None:
        try:
            since = email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            since = None
        if since is not None and email.utils.parsedate_to_datetime(LAST_MODIFIED) <= since:
            return await server.send(writer, 304, validators)
    headers = {"Content-Type": "application/rss+xml; charset=utf-8", **validators}
    if req.query.get("close"):
        headers["Connection"] = "close"
        await server.send(writer, 200, headers, FEED)
        return False
    return await server.send(writer, 200, headers, FEED)


async def _mislabeled(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """The plain feed labelled with ``?encoding=...`` (e.g. gzip, br)."""
    headers = {"Content-Type": "application/rss+xml", "Content-Encoding": req.query["encoding"]}
    return await server.send(writer, 200, headers, FEED)


async def _encoded(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """The feed compressed: ``/gzip``, ``/deflate`` (zlib), ``/deflate?raw=1`` (bare deflate)."""
    if req.path == "/gzip":
        body, encoding = gzip.compress(FEED), "gzip"
    elif req.query.get("raw"):
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body, encoding = compressor.compress(FEED) + compressor.flush(), "deflate"
    else:
        body, encoding = zlib.compress(FEED), "deflate"
    headers = {"Content-Type": "application/rss+xml", "Content-Encoding": encoding}
    return await server.send(writer, 200, headers, body)


_BOMBS: dict[int, bytes] = {}


async def _bomb(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """A small gzip body that expands to ``size`` zero bytes."""
    size = int(req.query.get("size", str(64 * 1024 * 1024)))
    if size not in _BOMBS:
        _BOMBS[size] = gzip.compress(bytes(size), compresslevel=9)
    headers = {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
    return await server.send(writer, 200, headers, _BOMBS[size])


async def _redirect(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """``/redirect?code=301&to=URL``; ``to`` may be relative or absolute."""
    code = int(req.query.get("code", "302"))
    return await server.send(writer, code, {"Location": req.query.get("to", "/feed")})


async def _hops(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """``/hops?codes=301,302`` redirects once per listed code, then to ``/feed``."""
    codes = [c for c in req.query.get("codes", "").split(",") if c]
    if not codes:
        return await server.send(writer, 302, {"Location": "/feed"})
    rest = ",".join(codes[1:])
    target = f"/hops?codes={rest}" if rest else "/feed"
    return await server.send(writer, int(codes[0]), {"Location": target})


async def _loop(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """``/loop-a`` -> ``/loop-b`` -> ``/loop-a`` ..."""
    target = "/loop-b" if req.path == "/loop-a" else "/loop-a"
    return await server.send(writer, 302, {"Location": target})


async def _status(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """``/status?code=429&retry_after=120`` answers that status with a short body."""
    headers = {"Content-Type": "text/plain"}
    if "retry_after" in req.query:
        headers["Retry-After"] = req.query["retry_after"]
    return await server.send(writer, int(req.query["code"]), headers, b"no feed here\n")


async def _stall(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """Promise ``length`` bytes, send ``send`` of them, then go silent until the client leaves."""
    length, sent = int(req.query.get("length", "100000")), int(req.query.get("send", "100"))
    headers = {"Content-Type": "application/rss+xml", "Content-Length": str(length)}
    writer.write(_head(200, headers) + FEED[:sent].ljust(sent, b" "))
    await writer.drain()
    await _wait_for_close(req.reader)
    return False


async def _broken(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """``/garbage``: not HTTP at all; ``/truncated``: the body ends early and the socket closes."""
    if req.path == "/garbage":
        writer.write(b"HELLO THERE\r\n\r\n")
    else:
        writer.write(_head(200, {"Content-Length": "1000"}) + FEED[:100])
    await writer.drain()
    return False


async def _declared(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """Declare a huge Content-Length, then send nothing: only an early refusal ends quickly."""
    headers = {"Content-Type": "application/rss+xml", "Content-Length": req.query["length"]}
    writer.write(_head(200, headers))
    await writer.drain()
    await _wait_for_close(req.reader)
    return False


async def _stream(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """``/endless``: chunked forever; ``/big?size=N``: N bytes, chunked unless ``length=1``.

    Counts what it managed to hand to the socket and sets ``finished(path)`` when it stops.
    """
    total = None if req.path == "/endless" else int(req.query.get("size", "0"))
    with_length = total is not None and req.query.get("length") == "1"
    headers = {"Content-Type": "application/rss+xml"}
    if with_length:
        headers["Content-Length"] = str(total)
    else:
        headers["Transfer-Encoding"] = "chunked"
    chunk = b"x" * 16384
    sent = 0
    try:
        writer.write(_head(200, headers))
        while total is None or sent < total:
            piece = chunk if total is None else chunk[: total - sent]
            writer.write(piece if with_length else b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            sent += len(piece)
            server.stats.body_bytes_sent[req.path] = sent
        if not with_length:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError as exc:
        raise _Closed from exc
    finally:
        server.finished(req.path).set()
    return True


async def _drip(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """A chunked body of one byte every ``interval`` seconds, forever: no single read stalls."""
    interval = float(req.query.get("interval", "0.05"))
    writer.write(_head(200, {"Transfer-Encoding": "chunked"}))
    try:
        while True:
            writer.write(b"1\r\n \r\n")
            await writer.drain()
            await asyncio.sleep(interval)
    except ConnectionError as exc:
        raise _Closed from exc
    finally:
        server.finished(req.path).set()


async def _slow(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """Answer after ``delay`` seconds, counting how many requests are in progress at once."""
    stats = server.stats
    stats.active += 1
    stats.max_active = max(stats.max_active, stats.active)
    try:
        await asyncio.sleep(float(req.query.get("delay", "0.1")))
    finally:
        stats.active -= 1
    return await server.send(writer, 200, {"Content-Type": "application/rss+xml"}, FEED)


async def _date(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    """503 with an HTTP-date Retry-After ``seconds`` from the server's clock."""
    when = datetime.now(UTC).timestamp() + float(req.query.get("seconds", "3600"))
    value = email.utils.formatdate(when, usegmt=True)
    return await server.send(writer, 503, {"Retry-After": value}, b"busy\n")


async def _not_found(server: LocalHTTPServer, req: _Request, writer: asyncio.StreamWriter) -> bool:
    return await server.send(writer, 404, {"Content-Type": "text/plain"}, b"not found\n")


async def _wait_for_close(reader: asyncio.StreamReader, limit: float = 30.0) -> None:
    try:
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError):
        pass


_ROUTES: dict[str, Handler] = {
    "/feed": _feed,
    "/gzip": _encoded,
    "/deflate": _encoded,
    "/bomb": _bomb,
    "/redirect": _redirect,
    "/hops": _hops,
    "/loop-a": _loop,
    "/loop-b": _loop,
    "/status": _status,
    "/stall": _stall,
    "/declared": _declared,
    "/garbage": _broken,
    "/truncated": _broken,
    "/endless": _stream,
    "/big": _stream,
    "/slow": _slow,
    "/drip": _drip,
    "/mislabeled": _mislabeled,
    "/busy-until": _date,
}
