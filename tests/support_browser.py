"""A real uvicorn server for the pages, a same-origin link crawler, and browser availability.

The server runs a tiny ASGI app in a thread on 127.0.0.1 and a free port: pages go to
``Pages.handle`` (in a worker thread, as the service calls it), and the feed URLs the pages
link answer a small stub for scopes that exist and 404 otherwise, so the crawler catches a page
that links a feed of a section that does not exist. ``crawl`` works on any base URL, so it can
also be pointed at the full service.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import pytest
import uvicorn

from feedhub.web.pages import Pages, owns, send_page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
Scope = MutableMapping[str, Any]


def require_browser() -> None:
    """Skip when Chromium or Playwright is missing; fail instead if FEEDHUB_REQUIRE_BROWSER=1."""
    missing = []
    if not Path(CHROMIUM).is_file():
        missing.append(CHROMIUM)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("FEEDHUB_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (FEEDHUB_REQUIRE_BROWSER=1)")
        pytest.skip(message)


class PagesApp:
    """The pages plus stub feeds: the routes the lead's app gives the pages, and nothing more."""

    def __init__(self, pages: Pages, section_ids: Callable[[], set[str]]) -> None:
        self.pages = pages
        self.section_ids = section_ids
        self.requests: list[str] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        self.requests.append(path)
        if owns(path):
            await send_page(self.pages, scope, send)
            return
        status, headers, body = self._feed(path)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _feed(self, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        known = {"/opml.xml"}
        for ext in ("xml", "atom", "json"):
            known.add(f"/feeds/all.{ext}")
            known.update(f"/feeds/section/{s}.{ext}" for s in self.section_ids())
        if path in known:
            return 200, [(b"content-type", b"application/xml")], b"<stub/>"
        return 404, [(b"content-type", b"text/plain")], b"not found\n"


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 and a free port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "link": "href", "img": "src", "form": "action"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.links.append(value)


def links(html: str) -> list[str]:
    """Every href/src/action in a page: anchors, head links, images, forms."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.links


@dataclass
class CrawlResult:
    status: dict[str, int] = field(default_factory=dict)  # same-origin URL -> status
    referrers: dict[str, str] = field(default_factory=dict)  # URL -> the page that linked it
    foreign: set[str] = field(default_factory=set)  # links elsewhere, not followed

    def broken(self) -> dict[str, tuple[int, str]]:
        return {
            url: (code, self.referrers.get(url, ""))
            for url, code in self.status.items()
            if code >= 400
        }


def same_origin_target(base: str, page: str, href: str) -> str | None:
    """The absolute same-origin URL ``href`` points at (fragment dropped), else None."""
    target = urljoin(page, href).split("#", 1)[0]
    origin, there = urlsplit(base), urlsplit(target)
    if (there.scheme, there.netloc) != (origin.scheme, origin.netloc):
        return None
    return target


def crawl(base: str, start: str = "/", *, limit: int = 5000) -> CrawlResult:
    """Follow every same-origin link from ``start``; HTML pages are read for more links."""
    result = CrawlResult()
    queue = [urljoin(base, start)]
    with httpx.Client(timeout=10) as client:
        while queue:
            url = queue.pop()
            if url in result.status:
                continue
            if len(result.status) >= limit:
                raise AssertionError(f"crawl passed {limit} URLs: a page generates endless links")
            response = client.get(url)
            result.status[url] = response.status_code
            if not response.headers.get("content-type", "").startswith("text/html"):
                continue
            for href in links(response.text):
                target = same_origin_target(base, url, href)
                if target is None:
                    if href.startswith(("http://", "https://")):
                        result.foreign.add(href)
                    continue
                result.referrers.setdefault(target, url)
                if target not in result.status:
                    queue.append(target)
    return result


def crawl_handler(pages: Pages, stubs: Sequence[str] = (), start: str = "/") -> CrawlResult:
    """``crawl`` without a server: straight through ``Pages.handle``. Paths the pages do not
    own (feeds) count as found when listed in ``stubs``."""
    base = "http://pages.test"
    result = CrawlResult()
    queue = [base + start]
    while queue:
        url = queue.pop()
        if url in result.status:
            continue
        parts = urlsplit(url)
        path = unquote(parts.path)
        if not owns(path):
            result.status[url] = 200 if path in stubs else 404
            continue
        response = pages.handle("GET", path, parts.query.encode())
        result.status[url] = response.status
        if dict(response.headers).get(b"content-type", b"").startswith(b"text/html"):
            for href in links(response.body.decode()):
                target = same_origin_target(base, url, href)
                if target is None:
                    continue
                result.referrers.setdefault(target, url)
                if target not in result.status:
                    queue.append(target)
    return result
