"""The ASGI application: feeds, OPML, demo files, health and metrics.

Written as a plain ASGI callable rather than on a framework's router: the feed path is the hot
one (feed readers poll it all day), and answering from the render cache with prebuilt headers
keeps a request to a few dictionary lookups. That lookup, ``FeedhubApp.cached_feed``, is also
what the HTTP server of ``feedhub run`` (``feedhub.service.FeedProtocol``) calls to answer
those polls without an ASGI round, so both paths give the same answer. Everything else is small
and rare.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urljoin

from feedhub.core.render import OpmlOutline, render_opml
from feedhub.errors import StorageError
from feedhub.publish import FeedKind, all_scopes, resolve_scope
from feedhub.relate import HotBoard
from feedhub.settings import Settings
from feedhub.storage.base import Storage
from feedhub.web import api
from feedhub.web.cache import (
    MAX_CACHED,
    CacheKey,
    FeedCache,
    Rendered,
    Variant,
    conditions,
    make_rendered,
    make_variant,
    not_modified,
)
from feedhub.web.metrics import Metrics
from feedhub.web.pages import Pages, owns, send_page
from feedhub.web.portal_store import StoragePortal

log = logging.getLogger("feedhub.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FEED_KINDS: dict[str, FeedKind] = {"section": "section", "source": "source", "region": "region"}
EXTENSIONS = ("xml", "atom", "json")
MAX_LIMIT = 200


class HealthSource(Protocol):
    """What /healthz asks of the worker when it runs in this process."""

    @property
    def alive(self) -> bool: ...


def _raw_path(scope: Scope) -> bytes:
    raw: bytes | None = scope.get("raw_path")
    return raw if raw is not None else scope["path"].encode()


@dataclass(frozen=True, slots=True)
class _Known:
    """A feed URL answered before: the cache entry it was answered from, and its two
    representations (so the settings are not consulted again until the cache moves on)."""

    key: CacheKey
    rendered: Rendered
    identity: Variant
    gzip: Variant


class FeedhubApp:
    def __init__(
        self,
        settings: Callable[[], Settings],
        storage: Storage,
        *,
        worker: HealthSource | None = None,
        demo_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.worker = worker
        self.demo_dir = demo_dir
        self.hot = HotBoard(storage, settings)
        self.cache = FeedCache(storage, settings, hot=self.hot)
        self.portal = StoragePortal(settings, storage, self.hot)
        self.pages = Pages(
            lambda: self.settings().site,
            self.portal,
            max_age=settings().web.cache_max_age,
        )
        self.metrics = Metrics(storage)
        self._opml: tuple[int, Rendered] | None = None
        self._fast: dict[bytes, _Known] = {}  # by raw path
        self._variants: dict[tuple[int, bool, int], Variant] = {}

    def invalidate(self) -> None:
        """New items landed or the config changed: rendered feeds are stale."""
        self.cache.invalidate()
        self.portal.invalidate()
        self._opml = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        if not scope["query_string"] and scope["method"] in ("GET", "HEAD"):
            answer = self.cached_feed(_raw_path(scope), scope["headers"])
            if answer is not None:
                status, variant = answer
                await self._send_variant(scope, send, variant, status)
                self.metrics.observe("feed", status, time.perf_counter() - started)
                return
        route, status = await self._dispatch(scope, send)
        self.metrics.observe(route, status, time.perf_counter() - started)

    def cached_feed(
        self, raw_path: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, Variant] | None:
        """The answer (200 or 304, and the representation) to a GET or HEAD without a query
        for a feed URL served before, while the render cache is known to be current; None
        when the request must take the full route. Feed readers poll the same few URLs all
        day: this is their path, a few dictionary lookups, callable from the server's
        protocol without an ASGI round (the caller records the request in ``metrics``)."""
        known = self._fast.get(raw_path)
        if known is None or self.cache.current(known.key) is not known.rendered:
            return None
        gz, inm, ims = conditions(headers)
        variant = known.gzip if gz else known.identity
        if not_modified(inm, ims, variant.etag, known.rendered.modified):
            return 304, variant
        return 200, variant

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: Scope, send: Send) -> tuple[str, int]:
        method = scope["method"]
        path: str = scope["path"]
        if method not in ("GET", "HEAD"):
            return "other", await self._text(
                send, 405, "method not allowed\n", method, extra=[(b"allow", b"GET, HEAD")]
            )
        if path.startswith("/feeds/"):
            return "feed", await self._feed(scope, send, path[len("/feeds/") :])
        if path == "/opml.xml":
            return "opml", await self._send_rendered(scope, send, self._opml_doc(), 200)
        if path == "/healthz":
            return "healthz", await self._health(send, method)
        if path == "/metrics":
            body = await asyncio.to_thread(self.metrics.exposition)
            return "metrics", await self._bytes(
                send, 200, body, b"text/plain; version=0.0.4; charset=utf-8", method
            )
        if path.startswith("/demo/feeds/") and self.settings().web.serve_demo_feeds:
            return "demo", await self._demo(scope, send, path[len("/demo/feeds/") :])
        if path.startswith("/api/"):
            return "api", await self._api(scope, send)
        if owns(path):
            return "page", await send_page(self.pages, scope, send)
        return "other", await self._text(send, 404, "not found\n", method)

    async def _api(self, scope: Scope, send: Send) -> int:
        try:
            status, value = await asyncio.to_thread(
                api.handle, self.portal, self.storage, scope["path"], scope["query_string"]
            )
        except StorageError as exc:
            log.error("api failed", extra={"path": scope["path"], "error": str(exc)})
            status, value = 503, {"error": "storage unavailable"}
        body = json.dumps(value, ensure_ascii=False).encode() + b"\n"
        max_age = int(self.settings().web.cache_max_age) if status == 200 else 0
        cache = b"public, max-age=%d" % max_age if max_age else b"no-store"
        return await self._bytes(
            send,
            status,
            body,
            b"application/json; charset=utf-8",
            scope["method"],
            extra=[(b"cache-control", cache), (b"access-control-allow-origin", b"*")],
        )

    # --- feeds -------------------------------------------------------------------------------

    async def _feed(self, scope: Scope, send: Send, rest: str) -> int:
        method = scope["method"]
        stem, dot, ext = rest.rpartition(".")
        if not dot or ext not in EXTENSIONS:
            return await self._text(
                send, 404, "unknown feed format: use .xml, .atom or .json\n", method
            )
        settings = self.settings()
        if stem in ("all", "hot"):
            feed_scope = resolve_scope(settings, "all", hot=stem == "hot")
        else:
            kind_name, slash, ident = stem.partition("/")
            kind = FEED_KINDS.get(kind_name)
            hot = kind == "section" and ident.endswith("/hot")
            if hot:
                ident = ident[: -len("/hot")]
            if kind is None or not slash or not ident or "/" in ident:
                return await self._text(send, 404, "no such feed\n", method)
            feed_scope = resolve_scope(settings, kind, ident, hot=hot)
            if feed_scope is None:
                return await self._text(send, 404, f"no such {kind_name}: {ident}\n", method)
        limit = settings.web.feed_limit
        query = scope.get("query_string", b"")
        if query:
            values = parse_qs(query.decode("latin-1")).get("limit")
            if values:
                try:
                    limit = int(values[-1])
                except ValueError:
                    limit = 0
                if not 1 <= limit <= MAX_LIMIT:
                    return await self._text(
                        send, 400, f"limit must be a whole number from 1 to {MAX_LIMIT}\n", method
                    )
        assert feed_scope is not None
        try:
            rendered = await self.cache.get(feed_scope, ext, limit)
        except StorageError as exc:
            log.error("feed failed", extra={"path": scope["path"], "error": str(exc)})
            return await self._text(send, 503, "storage unavailable\n", method)
        if not query:
            if len(self._fast) > MAX_CACHED:
                self._fast.clear()
            key = (feed_scope.path, ext, limit, self.hot.generation if feed_scope.hot else 0)
            known = _Known(
                key, rendered, self._variant(rendered, False), self._variant(rendered, True)
            )
            self._fast[_raw_path(scope)] = known
        return await self._send_rendered(scope, send, rendered, 200)

    def _variant(self, r: Rendered, gz: bool) -> Variant:
        """Response headers for one representation, built once per render and encoding."""
        max_age = int(self.settings().web.cache_max_age)
        key = (id(r), gz, max_age)
        variant = self._variants.get(key)
        if variant is not None and variant.rendered is r:
            return variant
        if len(self._variants) > 4 * MAX_CACHED:
            self._variants.clear()
        variant = self._variants[key] = make_variant(r, gz, max_age)
        return variant

    async def _send_rendered(self, scope: Scope, send: Send, r: Rendered, status: int) -> int:
        gz, inm, ims = conditions(scope["headers"])
        variant = self._variant(r, gz)
        if not_modified(inm, ims, variant.etag, r.modified):
            status = 304
        return await self._send_variant(scope, send, variant, status)

    async def _send_variant(self, scope: Scope, send: Send, variant: Variant, status: int) -> int:
        if status == 304:
            await send({"type": "http.response.start", "status": 304, "headers": variant.common})
            await send({"type": "http.response.body", "body": b""})
            return 304
        await send({"type": "http.response.start", "status": status, "headers": variant.full})
        body = b"" if scope["method"] == "HEAD" else variant.body
        await send({"type": "http.response.body", "body": body})
        return status

    def _opml_doc(self) -> Rendered:
        settings = self.settings()
        if self._opml is not None and self._opml[0] == id(settings):
            return self._opml[1]
        now = datetime.now(UTC)
        rendered = make_rendered(b"text/x-opml; charset=utf-8", site_opml(settings, now), now)
        self._opml = (id(settings), rendered)
        return rendered

    # --- the rest ----------------------------------------------------------------------------

    async def _demo(self, scope: Scope, send: Send, name: str) -> int:
        method = scope["method"]
        if self.demo_dir is None or "/" in name or name.startswith("."):
            return await self._text(send, 404, "not found\n", method)
        path = self.demo_dir / name
        if not path.is_file():
            return await self._text(send, 404, "not found\n", method)
        from feedhub.demo import content_type

        stamp = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
        rendered = make_rendered(content_type(path).encode(), path.read_bytes(), stamp)
        return await self._send_rendered(scope, send, rendered, 200)

    async def _health(self, send: Send, method: str) -> int:

        checks: dict[str, Any] = {}
        healthy = True
        try:
            await asyncio.wait_for(asyncio.to_thread(self.storage.ping), 5)
            checks["storage"] = "ok"
            last = await asyncio.to_thread(self.storage.last_success_at)
        except (StorageError, TimeoutError) as exc:
            checks["storage"] = f"failed: {exc}"
            healthy = False
            last = None
        if self.worker is not None:
            checks["scheduler"] = "ok" if self.worker.alive else "stopped"
            healthy = healthy and self.worker.alive
        else:
            checks["scheduler"] = "not in this process"
        now = datetime.now(UTC)
        checks["last_successful_poll"] = last.isoformat() if last else None
        checks["last_successful_poll_age_seconds"] = (
            round((now - last).total_seconds(), 1) if last else None
        )
        checks["status"] = "ok" if healthy else "unhealthy"
        body = json.dumps(checks, ensure_ascii=False).encode() + b"\n"
        return await self._bytes(
            send,
            200 if healthy else 503,
            body,
            b"application/json",
            method,
            extra=[(b"cache-control", b"no-store")],
        )

    async def _text(
        self,
        send: Send,
        status: int,
        text: str,
        method: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        return await self._bytes(
            send, status, text.encode(), b"text/plain; charset=utf-8", method, extra=extra
        )

    async def _bytes(
        self,
        send: Send,
        status: int,
        body: bytes,
        content_type: bytes,
        method: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        headers += extra or []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        return status


def site_opml(settings: Settings, now: datetime) -> bytes:
    """Every published feed (all, sections, regions, sources), grouped in folders."""
    base = settings.site.base_url
    folders = {"all": "全部", "hot": "热门", "section": "栏目", "region": "地区", "source": "来源"}
    groups: dict[str, list[OpmlOutline]] = {kind: [] for kind in folders}
    for scope in all_scopes(settings):
        groups["hot" if scope.hot else scope.kind].append(
            OpmlOutline(
                text=scope.title,
                title=scope.title,
                xml_url=urljoin(base, quote(scope.path) + ".xml"),
                html_url=base,
            )
        )
    outlines = [
        OpmlOutline(text=folders[kind], xml_url="", children=tuple(children))
        for kind, children in groups.items()
        if children
    ]
    return render_opml(settings.site.title, outlines, date=now)


def create_app(
    settings: Callable[[], Settings],
    storage: Storage,
    *,
    worker: HealthSource | None = None,
    demo_dir: Path | None = None,
) -> FeedhubApp:
    """The ASGI app. ``settings`` is called per request, so a config reload takes effect."""
    return FeedhubApp(settings, storage, worker=worker, demo_dir=demo_dir)
