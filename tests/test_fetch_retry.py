"""A connection that dies before answering is retried once; twice is an error."""

from __future__ import annotations

import asyncio

import pytest

from feedhub.errors import TransportError
from feedhub.fetch import Fetcher
from feedhub.settings import FetchSettings

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


async def serve(drops: int) -> tuple[asyncio.Server, list[int]]:
    """Close the first ``drops`` connections right after reading the request."""
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        seen.append(len(seen))
        if len(seen) <= drops:
            writer.close()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(FEED), FEED)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


async def test_one_dropped_connection_is_retried() -> None:
    server, seen = await serve(drops=1)
    port = server.sockets[0].getsockname()[1]
    settings = FetchSettings(allowlist=("127.0.0.1",), total_timeout=5)
    async with server, Fetcher(settings, user_agent="t") as fetcher:
        result = await fetcher.fetch(f"http://127.0.0.1:{port}/feed")
    assert result.status == 200 and result.content == FEED
    assert len(seen) == 2


async def test_two_dropped_connections_fail() -> None:
    server, seen = await serve(drops=2)
    port = server.sockets[0].getsockname()[1]
    settings = FetchSettings(allowlist=("127.0.0.1",), total_timeout=5)
    async with server, Fetcher(settings, user_agent="t") as fetcher:
        with pytest.raises(TransportError, match="RemoteProtocolError"):
            await fetcher.fetch(f"http://127.0.0.1:{port}/feed")
    assert len(seen) == 2
