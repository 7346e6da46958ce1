"""The HTTP side in-process (httpx over ASGI) on real SQLite filled through the real pipeline."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from feedhub.pipeline import poll_sources
from feedhub.settings import Settings
from feedhub.storage import open_storage
from feedhub.storage.base import Storage
from feedhub.web import FeedhubApp, create_app
from tests.support_feedserver import FeedServer, Route, rss

BASE = "https://news.example.cn/"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def settings_for(server: FeedServer) -> Settings:
    def src(sid: str, name: str, section: str, region: str) -> dict[str, Any]:
        return {
            "id": sid,
            "name": name,
            "url": server.url(f"/{sid}.xml"),
            "section": section,
            "region": region,
        }

    return Settings.model_validate(
        {
            "site": {"title": "琅琊新闻汇", "base_url": BASE},
            "fetch": {"allowlist": ["127.0.0.1"]},
            "sections": [
                {"id": "qinggan", "title": "情感"},
                {"id": "gushi", "title": "故事", "parent": "qinggan"},
                {"id": "hunlian", "title": "婚恋", "parent": "qinggan"},
                {"id": "jingji", "title": "经济"},
            ],
            "sources": [
                src("story", "鲁南情感", "gushi", "临沂"),
                src("money", "齐鲁财经", "jingji", "济南"),
                src("feel", "情感周刊", "hunlian", "临沂"),
            ],
        }
    )


def entries(prefix: str, n: int, day: int = 25) -> list[tuple[str, str, str]]:
    return [
        (f"{prefix}{i}", f"{prefix} 第{i}条 新闻", f"Tue, {day} Nov 2025 0{i % 10}:00:00 +0800")
        for i in range(n)
    ]


@pytest.fixture
async def env(
    tmp_path: Path, server: FeedServer
) -> AsyncIterator[tuple[httpx.AsyncClient, FeedhubApp, Storage, Settings]]:
    server.routes["/story.xml"] = Route(rss("故事", entries("story", 5)))
    server.routes["/money.xml"] = Route(rss("财经", entries("money", 7)))
    server.routes["/feel.xml"] = Route(rss("情感", entries("feel", 3)))
    settings = settings_for(server)
    storage = open_storage(f"sqlite:///{tmp_path}/web.db")
    storage.migrate()
    await poll_sources(settings, storage, ignore_schedule=True)
    app = create_app(lambda: settings, storage)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, app, storage, settings
    storage.close()


async def test_rss_feed_is_complete_and_cacheable(env: Any) -> None:
    client, app, _, _ = env
    r = await client.get("/feeds/all.xml", headers={"accept-encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert r.headers["etag"].startswith('"') and r.headers["last-modified"]
    assert "max-age" in r.headers["cache-control"]
    assert r.headers["vary"] == "Accept-Encoding"
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo
    assert len(parsed.entries) == 15
    titles = {e.title for e in parsed.entries}
    assert "story 第1条 新闻" in titles and "money 第6条 新闻" in titles
    first = parsed.entries[0]
    assert first.link.startswith("https://news.example.cn/a/")
    assert "来源" in first.description
    renders = app.cache.renders
    again = await client.get("/feeds/all.xml", headers={"accept-encoding": "identity"})
    assert again.content == r.content and app.cache.renders == renders  # served from cache


async def test_etag_304_and_new_items_change_it(env: Any, server: FeedServer) -> None:
    client, app, storage, settings = env
    r = await client.get("/feeds/all.atom", headers={"accept-encoding": "identity"})
    etag = r.headers["etag"]
    again = await client.get(
        "/feeds/all.atom", headers={"if-none-match": etag, "accept-encoding": "identity"}
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    since = await client.get(
        "/feeds/all.atom",
        headers={"if-modified-since": r.headers["last-modified"], "accept-encoding": "identity"},
    )
    assert since.status_code == 304

    server.routes["/money.xml"] = Route(rss("财经", entries("money", 9, day=26)))
    await poll_sources(settings, storage, ignore_schedule=True)
    app.invalidate()  # what the in-process worker does when new items land
    changed = await client.get(
        "/feeds/all.atom", headers={"if-none-match": etag, "accept-encoding": "identity"}
    )
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_data_version_is_noticed_without_invalidate(env: Any, server: FeedServer) -> None:
    client, app, storage, settings = env
    app.cache.version_ttl = 0
    first = await client.get("/feeds/source/money.json")
    server.routes["/money.xml"] = Route(rss("财经", entries("money", 8, day=27)))
    await poll_sources(settings, storage, ignore_schedule=True)
    second = await client.get("/feeds/source/money.json")
    assert second.headers["etag"] != first.headers["etag"]
    assert len(second.json()["items"]) == 8


async def test_gzip_compressed_once_with_its_own_etag(env: Any) -> None:
    client, app, _, _ = env
    plain = await client.get("/feeds/all.json", headers={"accept-encoding": "identity"})
    raw = await client.get("/feeds/all.json", headers={"accept-encoding": "gzip"}, extensions={})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["etag"] != plain.headers["etag"]
    assert raw.content == plain.content  # httpx decoded it
    renders = app.cache.renders
    not_modified = await client.get(
        "/feeds/all.json",
        headers={"accept-encoding": "gzip", "if-none-match": raw.headers["etag"]},
    )
    assert not_modified.status_code == 304 and app.cache.renders == renders
    cross = await client.get(
        "/feeds/all.json",
        headers={"accept-encoding": "identity", "if-none-match": raw.headers["etag"]},
    )
    assert cross.status_code == 200  # the gzip ETag names another representation
    cached = app.cache._entries[("feeds/all", "json", 50, 0)]
    assert gzip.decompress(cached.gzip_body) == plain.content


async def test_head_has_headers_and_no_body(env: Any) -> None:
    client, _, _, _ = env
    r = await client.head("/feeds/all.xml", headers={"accept-encoding": "identity"})
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["content-length"]) > 1000


async def test_section_source_region_feeds(env: Any) -> None:
    client, _, _, _ = env
    parent = (await client.get("/feeds/section/qinggan.json")).json()
    assert {i["_feedhub"]["section"] for i in parent["items"]} == {"gushi", "hunlian"}
    assert len(parent["items"]) == 8  # a parent section includes its children's items
    child = (await client.get("/feeds/section/gushi.json")).json()
    assert len(child["items"]) == 5
    source = (await client.get("/feeds/source/money.json")).json()
    assert len(source["items"]) == 7
    item = source["items"][0]
    assert item["_feedhub"]["sources"][0]["id"] == "money"
    assert item["_feedhub"]["sources"][0]["name"] == "齐鲁财经"
    related = item["_feedhub"]["related"]
    assert related and item["id"] not in [r["id"] for r in related]
    assert all(r["url"] == f"{BASE}story/{r['id']}" for r in related)
    region = (await client.get("/feeds/region/临沂.json")).json()
    assert len(region["items"]) == 8
    assert region["title"] == "琅琊新闻汇 - 临沂"


async def test_limit_and_errors(env: Any) -> None:
    client, _, _, _ = env
    assert len((await client.get("/feeds/all.json?limit=4")).json()["items"]) == 4
    for bad in ("0", "201", "x"):
        r = await client.get(f"/feeds/all.json?limit={bad}")
        assert r.status_code == 400 and "limit" in r.text
    missing = await client.get("/feeds/section/nope.xml")
    assert missing.status_code == 404 and "no such section: nope" in missing.text
    assert (await client.get("/feeds/source/nope.atom")).status_code == 404
    assert (await client.get("/feeds/region/火星.xml")).status_code == 404
    assert (await client.get("/feeds/all.html")).status_code == 404
    assert (await client.post("/feeds/all.xml")).status_code == 405


async def test_opml_lists_every_feed(env: Any) -> None:
    client, _, _, settings = env
    r = await client.get("/opml.xml")
    assert r.status_code == 200 and "opml" in r.headers["content-type"]
    body = r.text
    for path in ("feeds/all.xml", "feeds/section/gushi.xml", "feeds/source/money.xml"):
        assert BASE + path in body
    assert "feeds/region/" in body


async def test_healthz_and_metrics(env: Any) -> None:
    client, _, _, settings = env
    health = await client.get("/healthz")
    assert health.status_code == 200
    data = health.json()
    assert data["status"] == "ok" and data["storage"] == "ok"
    assert data["last_successful_poll_age_seconds"] is not None
    await client.get("/feeds/all.xml")
    metrics = (await client.get("/metrics")).text
    assert 'feedhub_source_items{source="money"} 7.0' in metrics
    assert 'feedhub_source_fetches_total{outcome="ok",source="money"} 1.0' in metrics
    assert 'feedhub_http_requests_total{route="feed",status="200"}' in metrics
    assert "feedhub_http_request_duration_seconds_bucket" in metrics

    broken = open_storage("postgresql://nobody@127.0.0.1:1/none")
    bad_app = create_app(lambda: settings, broken)
    transport = httpx.ASGITransport(app=bad_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/healthz")
    broken.close()
    assert r.status_code == 503 and r.json()["status"] == "unhealthy"


async def test_concurrent_misses_render_once(env: Any) -> None:
    client, app, _, _ = env
    app.invalidate()
    before = app.cache.renders
    results = await asyncio.gather(*(client.get("/feeds/all.xml?limit=7") for _ in range(10)))
    assert {r.status_code for r in results} == {200}
    assert app.cache.renders == before + 1
    assert json.loads((await client.get("/feeds/all.json?limit=7")).text)["items"]


# --- the server's own answers to cached feeds (feedhub.service.FeedProtocol) -----------------


class Conn:
    """A raw HTTP/1.1 client connection: exact bytes out, responses parsed as they come."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, *requests: tuple[str, str, dict[str, str]], version: str = "1.1") -> None:
        for method, path, headers in requests:
            lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", "User-Agent: t"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def response(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"header {name} sent twice"
            headers[name.lower()] = value.strip()
        status = int(status_line.split()[1])
        length = 0 if method == "HEAD" or status == 304 else int(headers["content-length"])
        body = await asyncio.wait_for(self.reader.readexactly(length), 5)
        return status, headers, body

    async def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        self.send((method, path, headers or {}))
        return await self.response(method)

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def live(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[int, FeedhubApp, list[str]]]:
    """``env``'s app behind the server ``feedhub run`` starts; the list collects the paths of
    HTTP requests that reached the app through ASGI (the others were answered by the server)."""
    from feedhub.service import web_server

    _, app, _, _ = env
    routed: list[str] = []
    asgi = FeedhubApp.__call__

    async def counting(self: FeedhubApp, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            routed.append(
                scope["path"]
                + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
            )
        await asgi(self, scope, receive, send)

    monkeypatch.setattr(FeedhubApp, "__call__", counting)
    app.cache.version_ttl = 60  # the data version is re-read by the app once a TTL has passed
    server = web_server(app, "127.0.0.1", 0, timeout_keep_alive=1.0)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port, app, routed
    server.should_exit = True
    await task


IDENTITY = {"Accept-Encoding": "identity"}


async def test_server_answers_cached_feeds_itself_with_the_same_headers(
    env: Any, live: Any
) -> None:
    client = env[0]
    port, app, routed = live
    conn = await Conn.open(port)
    first = await conn.get("/feeds/all.xml", IDENTITY)
    assert routed == ["/feeds/all.xml"]  # a first request renders through the app
    again = await conn.get("/feeds/all.xml", IDENTITY)
    assert routed == ["/feeds/all.xml"]  # then the server answers from the cache
    assert again[0] == 200 and again[2] == first[2]
    assert again[1] | {"date": ""} == first[1] | {"date": ""}  # the same headers
    for name in (
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
        "vary",
        "date",
    ):
        assert name in again[1], name
    assert int(again[1]["content-length"]) == len(again[2])
    via_asgi = await client.get("/feeds/all.xml", headers=IDENTITY)  # in-process, no server
    assert via_asgi.content == again[2]
    assert {k: v for k, v in again[1].items() if k != "date"} == dict(via_asgi.headers)
    routed.clear()

    etag = again[1]["etag"]
    status, headers, body = await conn.get("/feeds/all.xml", {**IDENTITY, "If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    assert "content-length" not in headers and "content-type" not in headers
    assert headers["vary"] == "Accept-Encoding" and "max-age" in headers["cache-control"]
    weak = await conn.get("/feeds/all.xml", {**IDENTITY, "If-None-Match": f'"x", W/{etag}'})
    assert weak[0] == 304
    since = {**IDENTITY, "If-Modified-Since": again[1]["last-modified"]}
    assert (await conn.get("/feeds/all.xml", since))[0] == 304
    before = {**IDENTITY, "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    assert (await conn.get("/feeds/all.xml", before))[0] == 200

    status, headers, zipped = await conn.get("/feeds/all.xml", {"Accept-Encoding": "gzip, br"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["etag"] != etag and gzip.decompress(zipped) == again[2]
    gz_etag = {"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]}
    assert (await conn.get("/feeds/all.xml", gz_etag))[0] == 304
    refused = await conn.get("/feeds/all.xml", {"Accept-Encoding": "gzip;q=0"})
    assert refused[2] == again[2] and "content-encoding" not in refused[1]
    cross = await conn.get("/feeds/all.xml", {**IDENTITY, "If-None-Match": headers["etag"]})
    assert cross[0] == 200  # the gzip ETag names the other representation

    status, headers, body = await conn.get("/feeds/all.xml", IDENTITY, method="HEAD")
    assert status == 200 and body == b"" and headers == again[1] | {"date": headers["date"]}
    assert (await conn.get("/feeds/all.xml", IDENTITY))[2] == again[2]  # nothing left over
    assert routed == []

    limited = await conn.get("/feeds/all.xml?limit=3", IDENTITY)
    assert limited[0] == 200 and limited[2].count(b"<item>") == 3
    assert routed[-1] == "/feeds/all.xml?limit=3"
    assert (await conn.get("/feeds/nope.xml"))[0] == 404
    assert (await conn.get("/feeds/all.xml", IDENTITY, method="DELETE"))[0] == 405
    conn.close()

    metrics = (await client.get("/metrics")).text
    assert 'feedhub_http_requests_total{route="feed",status="304"} 4.0' in metrics
    assert 'feedhub_http_request_duration_seconds_count{route="feed"}' in metrics


async def test_server_keeps_order_and_connection_rules(live: Any) -> None:
    port, app, routed = live
    conn = await Conn.open(port)
    plain = await conn.get("/feeds/all.atom", IDENTITY)  # rendered, then cached
    etag = plain[1]["etag"]
    # Pipelined: a request the app must route, then cached answers queued behind it
    conn.send(
        ("GET", "/feeds/all.atom?limit=2", IDENTITY),
        ("GET", "/feeds/all.atom", {**IDENTITY, "If-None-Match": etag}),
        ("HEAD", "/feeds/all.atom", IDENTITY),
        ("GET", "/feeds/all.atom", IDENTITY),
    )
    limited = await conn.response()
    assert limited[0] == 200 and limited[2].count(b"<entry>") == 2
    assert (await conn.response())[0] == 304
    head = await conn.response("HEAD")
    assert head[0] == 200 and head[1]["etag"] == etag
    assert (await conn.response())[2] == plain[2]
    assert len(routed) == 5  # queued behind a routed response, the others were routed too
    conn.send(
        ("GET", "/feeds/all.atom", {**IDENTITY, "If-None-Match": etag}),
        ("HEAD", "/feeds/all.atom", IDENTITY),
        ("GET", "/feeds/all.atom", IDENTITY),
    )
    assert (await conn.response())[0] == 304
    assert (await conn.response("HEAD"))[1]["content-length"] == str(len(plain[2]))
    assert (await conn.response())[2] == plain[2]
    assert len(routed) == 5  # answered one after the other by the server
    conn.close()

    closing = await Conn.open(port)
    status, headers, _ = await closing.get("/feeds/all.atom", {**IDENTITY, "Connection": "close"})
    assert status == 200 and headers["connection"] == "close"
    assert await closing.closed_by_server()
    closing.close()
    old = await Conn.open(port)
    old.send(("GET", "/feeds/all.atom", IDENTITY), version="1.0")
    status, headers, body = await old.response()
    assert headers["connection"] == "close" and body == plain[2]
    assert await old.closed_by_server()
    old.close()
    with_body = await Conn.open(port)
    with_body.send(("GET", "/feeds/all.atom", {**IDENTITY, "Content-Length": "3"}))
    with_body.writer.write(b"abc")
    assert (await with_body.response())[2] == plain[2]
    assert (await with_body.get("/feeds/all.atom", IDENTITY))[2] == plain[2]
    with_body.close()
    assert len(routed) == 5


async def test_server_keep_alive_timeout_counts_from_the_last_answer(live: Any) -> None:
    port, app, routed = live  # timeout_keep_alive=1.0
    conn = await Conn.open(port)
    await conn.get("/feeds/all.json", IDENTITY)
    for _ in range(5):  # 1.5 s in all, never 1 s idle: the connection stays
        await asyncio.sleep(0.3)
        assert (await conn.get("/feeds/all.json", IDENTITY))[0] == 200
    assert routed == ["/feeds/all.json"]
    app.cache.version_ttl = 0  # the cache is no longer known current: the app checks again
    assert (await conn.get("/feeds/all.json", IDENTITY))[0] == 200
    assert routed == ["/feeds/all.json"] * 2
    started = asyncio.get_running_loop().time()
    assert await conn.closed_by_server()
    idle = asyncio.get_running_loop().time() - started
    conn.close()
    assert 0.7 < idle < 3.0
