"""The reader-facing HTML pages: home, section, story, search, and their stylesheet.

One synchronous entry point, ``Pages.handle``, turns a request (method, path, query, headers)
into a ``PageResponse``; the ASGI layer routes here and sends the result (calling it in a thread,
since ``PortalData`` may block on storage). Pages are plain server-rendered HTML with no
JavaScript, sent with a Content-Security-Policy that forbids scripts outright.

Caching follows the feeds: a page's ETag is derived from the data version, the site settings,
the templates and the request, not from the body, so a client's revalidation is answered 304
without rendering anything; the latest renders are also kept in a small LRU keyed by the same
things (gzip bodies compressed once, under an ETag of their own). That requires rendering to be
deterministic for a given data version: no relative times ("3 分钟前"), no clock reads.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from feedhub.errors import StorageError
from feedhub.settings import SiteSettings
from feedhub.web.page_views import STATIC_DIR, Views, template_digest
from feedhub.web.portal import PortalData

Headers = tuple[tuple[bytes, bytes], ...]

_HTML = b"text/html; charset=utf-8"
_CSP = (
    b"default-src 'none'; style-src 'self'; img-src http: https: data:; "
    b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY: Headers = (
    (b"content-security-policy", _CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)
MAX_PAGE = 10_000  # deeper pages are refused before storage is asked for an enormous offset
MAX_QUERY = 64  # characters of a search query that are used


@dataclass(frozen=True, slots=True)
class PageResponse:
    status: int
    headers: Headers
    body: bytes  # empty for HEAD and 304


@dataclass(frozen=True, slots=True)
class _Static:
    content_type: bytes
    body: bytes
    etag: bytes


def _load_static() -> dict[str, _Static]:
    files: dict[str, _Static] = {}
    for path in sorted(STATIC_DIR.glob("*.css")):
        body = path.read_bytes()
        digest = hashlib.blake2b(body, digest_size=8).hexdigest()
        files[path.name] = _Static(b"text/css; charset=utf-8", body, f'"{digest}"'.encode())
    return files


def owns(path: str) -> bool:
    """Whether ``path`` is one of the pages' routes, for the ASGI layer's dispatch."""
    return path == "/" or path == "/search" or path.startswith(("/section/", "/story/", "/static/"))


def _etag_matches(header: bytes, etag: bytes) -> bool:
    if header.strip() == b"*":
        return True
    return any(part.strip().removeprefix(b"W/") == etag for part in header.split(b","))


def _accepts_gzip(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    value = _header(headers, b"accept-encoding")
    if value is None:
        return False
    for part in value.split(b","):
        token, _, params = part.strip().partition(b";")
        if token.strip().lower() in (b"gzip", b"*"):
            q = params.strip().replace(b" ", b"")
            return not (q.startswith(b"q=0") and q.rstrip(b"0.") == b"q=")
    return False


def _header(headers: Sequence[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value
    return None


def _page_number(values: dict[str, list[str]]) -> int | None:
    """The ``page`` parameter: 1 when absent, None when it is not a sensible page number."""
    raw = values.get("page")
    if not raw:
        return 1
    text = raw[-1].strip()
    if not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if 1 <= number <= MAX_PAGE else None


def clean_query(value: str) -> str:
    """A search query as searched: whitespace collapsed, at most ``MAX_QUERY`` characters."""
    return " ".join(value.split())[:MAX_QUERY].strip()


class Pages:
    """Answers page requests from a ``PortalData``.

    ``site`` is the settings object or a callable returning the current one (so a config reload
    shows on the next request). Templates are compiled once per process, the stylesheet read
    once; a request never touches the file system.
    """

    def __init__(
        self,
        site: SiteSettings | Callable[[], SiteSettings],
        data: PortalData,
        *,
        max_age: float = 60.0,
        per_page: int = 20,
        box_size: int = 10,
        cache_size: int = 256,
    ) -> None:
        self._site = site
        self.data = data
        self.max_age = int(max_age)
        self.per_page = per_page
        self.box_size = box_size
        self.cache_size = cache_size
        self._static = _load_static()
        self._views = Views(self._static["style.css"].etag.strip(b'"').decode())
        # (path, canonical query, gzip) -> (etag, body); the lock: handle() runs in threads
        self._cache: OrderedDict[tuple[str, str, bool], tuple[bytes, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._site_key: tuple[SiteSettings | None, str] = (None, "")
        self.renders = 0  # for tests: how many pages were actually rendered

    def site(self) -> SiteSettings:
        return self._site if isinstance(self._site, SiteSettings) else self._site()

    def _site_digest(self, site: SiteSettings) -> str:
        # Held by reference, not id(): a reloaded object could reuse a freed one's id.
        if self._site_key[0] is not site:
            raw = site.model_dump_json().encode()
            self._site_key = (site, hashlib.blake2b(raw, digest_size=8).hexdigest())
        return self._site_key[1]

    def handle(
        self,
        method: str,
        path: str,
        query: bytes | str = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> PageResponse:
        """Answer one request. ``path`` is percent-decoded (as ASGI gives it); ``headers`` are
        (name, value) byte pairs as in an ASGI scope."""
        if method not in ("GET", "HEAD"):
            return PageResponse(
                405,
                ((b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8")),
                b"" if method == "HEAD" else b"method not allowed\n",
            )
        text_query = query.decode("utf-8", "replace") if isinstance(query, bytes) else query
        try:
            if path.startswith("/static/"):
                return self._static_file(method, path[len("/static/") :], headers)
            return self._page(method, path, text_query, headers)
        except StorageError:
            body = "<!doctype html><meta charset=utf-8><title>503</title><p>服务暂不可用。"
            return self._respond(method, 503, body.encode(), None, no_store=True)

    def _page(
        self, method: str, path: str, query: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> PageResponse:
        values = parse_qs(query, keep_blank_values=True, encoding="utf-8", errors="replace")
        args: dict[str, Any]
        if path == "/":
            kind, args, canonical = "home", {}, ""
        elif path.startswith("/section/") and "/" not in path[len("/section/") :]:
            number = _page_number(values)
            if number is None:
                return self._not_found(method)
            kind, args = "section", {"section_id": path[len("/section/") :], "page": number}
            canonical = f"page={number}"
        elif path.startswith("/story/") and "/" not in path[len("/story/") :]:
            kind, args, canonical = "story", {"story_id": path[len("/story/") :]}, ""
        elif path == "/search":
            number = _page_number(values)
            if number is None:
                return self._not_found(method)
            q = clean_query(values.get("q", [""])[-1])
            kind, args = "search", {"q": q, "page": number}
            canonical = f"q={quote(q)}&page={number}"
        else:
            return self._not_found(method)

        site = self.site()
        version = self.data.data_version()
        etag_src = f"{template_digest()}\0{self._site_digest(site)}\0{version}\0{path}\0{canonical}"
        etag = f'"{hashlib.blake2b(etag_src.encode(), digest_size=12).hexdigest()}"'.encode()
        gz = _accepts_gzip(headers)
        if gz:  # each encoding is its own representation, with its own validator
            etag = etag[:-1] + b'-gz"'
        inm = _header(headers, b"if-none-match")
        if inm is not None and _etag_matches(inm, etag):
            return PageResponse(304, self._cache_headers(etag), b"")
        key = (path, canonical, gz)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == etag:
                self._cache.move_to_end(key)
                return self._respond(method, 200, cached[1], etag, gz=gz)
        body = self._render(site, kind, args)
        if body is None:
            return self._not_found(method)
        if gz:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        with self._lock:
            self._cache[key] = (etag, body)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return self._respond(method, 200, body, etag, gz=gz)

    def _render(self, site: SiteSettings, kind: str, args: dict[str, Any]) -> bytes | None:
        self.renders += 1
        v = self._views
        data = self.data
        if kind == "home":
            return v.home(site, data, self.box_size)
        if kind == "section":
            return v.section(site, data, args["section_id"], args["page"], self.per_page)
        if kind == "story":
            return v.story(site, data, args["story_id"], self.box_size)
        return v.search(site, data, args["q"], args["page"], self.per_page)

    def _not_found(self, method: str) -> PageResponse:
        body = self._views.not_found(self.site(), self.data)
        return self._respond(method, 404, body, None, no_store=True)

    def _cache_headers(self, etag: bytes) -> Headers:
        return (
            (b"etag", etag),
            (b"cache-control", b"public, max-age=%d" % self.max_age),
            (b"vary", b"Accept-Encoding"),
        )

    def _respond(
        self,
        method: str,
        status: int,
        body: bytes,
        etag: bytes | None,
        *,
        no_store: bool = False,
        gz: bool = False,
    ) -> PageResponse:
        caching: Headers = ((b"cache-control", b"no-store"),) if no_store else ()
        if etag is not None:
            caching = self._cache_headers(etag)
        encoding: Headers = ((b"content-encoding", b"gzip"),) if gz else ()
        headers = (
            (b"content-type", _HTML),
            (b"content-length", b"%d" % len(body)),
            *encoding,
            *caching,
            *_SECURITY,
        )
        return PageResponse(status, headers, b"" if method == "HEAD" else body)

    def _static_file(
        self, method: str, name: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> PageResponse:
        found = self._static.get(name)
        if found is None:
            return self._not_found(method)
        # Pages link the stylesheet with ?v=<digest>, so it can be cached for long.
        common = ((b"etag", found.etag), (b"cache-control", b"public, max-age=86400"))
        inm = _header(headers, b"if-none-match")
        if inm is not None and _etag_matches(inm, found.etag):
            return PageResponse(304, common, b"")
        full = (
            (b"content-type", found.content_type),
            (b"content-length", b"%d" % len(found.body)),
            *common,
            (b"x-content-type-options", b"nosniff"),
        )
        return PageResponse(200, full, b"" if method == "HEAD" else found.body)


async def send_page(
    pages: Pages,
    scope: MutableMapping[str, Any],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> int:
    """Answer an ASGI HTTP request the pages own (see ``owns``); returns the status sent.

    ``PortalData`` may block on storage, so the page is made in a worker thread."""
    response = await asyncio.to_thread(
        pages.handle, scope["method"], scope["path"], scope["query_string"], scope["headers"]
    )
    await send(
        {"type": "http.response.start", "status": response.status, "headers": response.headers}
    )
    await send({"type": "http.response.body", "body": response.body})
    return response.status
