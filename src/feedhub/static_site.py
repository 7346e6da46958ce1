"""The reader pages as a static site, for ``feedhub export``.

Every page reachable from the home page is rendered by the same ``Pages`` handler the service
uses and written as ``<path>/index.html``, so any static host serves it at a directory URL:
``/section/jingji`` becomes ``section/jingji/``, page 2 of it ``section/jingji/page/2/``, and
links are rewritten to match, relative to each page (the site may live under a path prefix).
Feeds and the OPML are written next to them by the feed export. Search needs the running
service: on a static host the search box is the one thing that does not work.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from feedhub.relate import HotBoard
from feedhub.settings import Settings
from feedhub.storage.base import Storage
from feedhub.web.pages import Pages, owns
from feedhub.web.portal_store import StoragePortal

_HREF = re.compile(r'(href|src)="(/[^"]*)"')
MAX_PAGES = 1_000_000


def static_path(url: str) -> str | None:
    """The directory URL a page is written under, or None for what is not a static page."""
    parts = urlsplit(html.unescape(url))
    path = parts.path
    if path.startswith("/static/"):
        return path
    if not owns(path) or path == "/search":
        return None
    base = path.rstrip("/") + "/"
    page = parse_qs(parts.query).get("page")
    if page and page[-1].isdigit() and page[-1] != "1":
        base += f"page/{page[-1]}/"
    return base


def _rewrite(body: str, page_dir: str) -> str:
    """Root-absolute links made relative to the page, so the site works under any path
    prefix (``https://cdn.example.cn/news/``) and from the file system."""

    def swap(match: re.Match[str]) -> str:
        link = html.unescape(match.group(2))
        if urlsplit(link).path == "/search":
            return match.group(0)  # needs the running service
        target = static_path(link) or urlsplit(link).path
        relative = posixpath.relpath(target, page_dir)
        if target.endswith("/"):
            relative = "./" if relative == "." else relative + "/"
        return f'{match.group(1)}="{html.escape(relative, quote=True)}"'

    return _HREF.sub(swap, body)


def export_pages(
    settings: Settings,
    storage: Storage,
    out: Path,
    write: Callable[[Path, bytes], Path],
    hot: HotBoard | None = None,
) -> list[Path]:
    """Crawl the pages from ``/`` through the handler and write each one; return the files."""
    pages = Pages(settings.site, StoragePortal(lambda: settings, storage, hot))
    queue = ["/"]
    seen = set(queue)
    written: list[Path] = []
    while queue and len(seen) <= MAX_PAGES:
        url = queue.pop()
        parts = urlsplit(url)
        response = pages.handle("GET", unquote(parts.path), parts.query.encode())
        if response.status != 200:
            continue
        target = static_path(url)
        assert target is not None
        headers = dict(response.headers)
        if target.startswith("/static/"):
            written.append(write(out / target.lstrip("/"), response.body))
            continue
        body = response.body.decode("utf-8")
        for _, link in _HREF.findall(body):
            link = html.unescape(link)
            if static_path(link) is not None and link not in seen:
                seen.add(link)
                queue.append(link)
        if headers.get(b"content-type", b"").startswith(b"text/html"):
            body = _rewrite(body, target)
        written.append(write(out / target.lstrip("/") / "index.html", body.encode("utf-8")))
    return written
