"""The fetcher's HTTP/1.1 connections: which kept-alive connections may carry the next request.

A connection is reused only when its last answer was read to the end and nothing has arrived on
it since; a stale one costs a new connection, never a wrong answer. (The fetcher's behaviour over
these connections is tested in test_fetch.py against a real server.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

import feedhub.fetch_http11 as http11
from feedhub.fetch_guard import AddressGuard, AddressPolicy, default_ssl_context
from feedhub.fetch_http11 import Http11Pool

BODY = b"<rss/>"


class Server:
    """Answers every request on 127.0.0.1; ``after`` decides what follows each answer: bytes
    sent after it on the same connection, or None to close the connection without notice."""

    def __init__(self, after: Callable[[int], bytes | None]) -> None:
        self.after = after
        self.connections = 0
        self.requests = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
                extra = self.after(self.requests)
                writer.write(answer + (extra or b""))
                await writer.drain()
                if extra is None:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def url(self) -> httpx.URL:
        assert self._server is not None
        return httpx.URL(f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/feed")


@pytest.fixture
async def pool() -> AsyncIterator[Http11Pool]:
    guard = AddressGuard(AddressPolicy(allowlist=["127.0.0.1"]))
    pool = Http11Pool(
        guard,
        ssl_context=default_ssl_context,
        connect_timeout=2.0,
        read_timeout=2.0,
        max_idle=2,
    )
    yield pool
    await pool.aclose()


async def get(pool: Http11Pool, url: httpx.URL) -> bytes:
    reply = await pool.get(url, [])
    try:
        assert reply.status == 200
        return b"".join([chunk async for chunk in reply.chunks()])
    finally:
        await reply.aclose()


async def test_a_connection_is_reused(pool: Http11Pool) -> None:
    async with Server(lambda n: b"") as server:
        for _ in range(3):
            assert await get(pool, server.url()) == BODY
    assert (server.connections, server.requests) == (1, 3)


async def test_one_closed_by_the_server_while_idle_is_not_reused(pool: Http11Pool) -> None:
    # The server closes the connection after every answer, without saying so.
    async with Server(lambda n: None) as server:
        assert await get(pool, server.url()) == BODY
        await asyncio.sleep(0.05)  # the close reaches us
        assert await get(pool, server.url()) == BODY
    assert (server.connections, server.requests) == (2, 2)


async def test_one_closed_unnoticed_is_retried_on_a_fresh_connection(pool: Http11Pool) -> None:
    async with Server(lambda n: None) as server:
        assert await get(pool, server.url()) == BODY
        assert await get(pool, server.url()) == BODY  # at once: the close may not be seen yet
    assert server.requests == 2


async def test_bytes_arriving_while_idle_make_it_unusable(pool: Http11Pool) -> None:
    # A second, unasked-for answer must never be taken for the answer to the next request.
    stray = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"
    async with Server(lambda n: stray if n == 1 else b"") as server:
        assert await get(pool, server.url()) == BODY
        await asyncio.sleep(0.05)
        assert await get(pool, server.url()) == BODY
    assert server.connections == 2


async def test_idle_connections_expire(pool: Http11Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Server(lambda n: b"") as server:
        assert await get(pool, server.url()) == BODY
        monkeypatch.setattr(http11, "KEEPALIVE_EXPIRY", 0.0)
        assert await get(pool, server.url()) == BODY
    assert server.connections == 2


async def test_idle_connections_per_origin_are_capped(pool: Http11Pool) -> None:
    async with Server(lambda n: b"") as server:
        replies = [await pool.get(server.url(), []) for _ in range(4)]
        for reply in replies:
            assert [c async for c in reply.chunks()] == [BODY]
            await reply.aclose()
        assert server.connections == 4
        await asyncio.gather(*(get(pool, server.url()) for _ in range(4)))
    assert server.connections == 6  # two were kept (max_idle), two more had to be opened


async def test_an_answer_left_unread_closes_the_connection(pool: Http11Pool) -> None:
    async with Server(lambda n: b"") as server:
        reply = await pool.get(server.url(), [])
        await reply.aclose()  # body not read: the connection cannot carry another request
        assert await get(pool, server.url()) == BODY
    assert server.connections == 2
