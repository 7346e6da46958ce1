"""Rendered feeds, kept in memory and compressed once.

A busy feed costs a dictionary lookup: the body is rendered and gzipped once per data version,
each variant with its own strong ETag. The data version comes from storage (the newest item
change); it is re-read at most once a second, and immediately when the in-process worker says
new items landed. Concurrent misses for the same feed share one render.

A render's two representations (``Variant``) carry their response headers prebuilt, and the
conditional-request rules (which representation a request gets, whether a 304 will do) live
here too, next to the ETags they compare, for the app and the server protocol alike.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache

from feedhub.core.render import render_atom, render_json, render_rss
from feedhub.models import FeedEntry, FeedMeta, Story
from feedhub.publish import FeedScope, feed_meta, story_entry, to_entries, with_related
from feedhub.relate import HotBoard
from feedhub.settings import Settings
from feedhub.storage.base import Storage

CONTENT_TYPES = {
    "xml": b"application/rss+xml; charset=utf-8",
    "atom": b"application/atom+xml; charset=utf-8",
    "json": b"application/feed+json; charset=utf-8",
}
RENDERERS: dict[str, Callable[[FeedMeta, list[FeedEntry]], bytes]] = {
    "xml": render_rss,
    "atom": render_atom,
    "json": render_json,
}
MAX_CACHED = 1024
CacheKey = tuple[str, str, int, int]  # path, format, limit, hot ranking generation


@dataclass(frozen=True, slots=True)
class Rendered:
    content_type: bytes
    body: bytes
    gzip_body: bytes
    etag: bytes
    gzip_etag: bytes
    last_modified: bytes  # HTTP-date
    modified: float  # POSIX seconds, whole seconds (HTTP-date precision)


def make_rendered(content_type: bytes, body: bytes, modified: datetime) -> Rendered:
    digest = hashlib.blake2b(body, digest_size=12).hexdigest()
    whole = modified.astimezone(UTC).replace(microsecond=0)
    return Rendered(
        content_type=content_type,
        body=body,
        gzip_body=gzip.compress(body, compresslevel=6, mtime=0),
        etag=f'"{digest}"'.encode(),
        gzip_etag=f'"{digest}-gz"'.encode(),
        last_modified=format_datetime(whole, usegmt=True).encode(),
        modified=whole.timestamp(),
    )


# --- representations and conditional requests ----------------------------------------------


@lru_cache(maxsize=256)
def _gzip_accepted(accept_encoding: bytes) -> bool:
    """Readers send the same few Accept-Encoding values on every poll."""
    for part in accept_encoding.split(b","):
        token, _, params = part.strip().partition(b";")
        if token.strip() in (b"gzip", b"*"):
            q = params.strip()
            return not (q.startswith(b"q=0") and q.rstrip(b"0.") == b"q=")
    return False


def conditions(headers: list[tuple[bytes, bytes]]) -> tuple[bool, bytes | None, bytes | None]:
    """Whether gzip is accepted, and the If-None-Match and If-Modified-Since values: one pass
    over a request's headers (the first of each counts)."""
    encoding = inm = ims = None
    for name, value in headers:
        if name == b"accept-encoding":
            if encoding is None:
                encoding = value
        elif name == b"if-none-match":
            if inm is None:
                inm = value
        elif name == b"if-modified-since":
            if ims is None:
                ims = value
    return encoding is not None and _gzip_accepted(encoding), inm, ims


def _etag_matches(header: bytes, etag: bytes) -> bool:
    if header == etag:  # what a polling reader sends back
        return True
    if header.strip() == b"*":
        return True
    return any(candidate.strip().removeprefix(b"W/") == etag for candidate in header.split(b","))


@lru_cache(maxsize=256)
def _http_date(value: bytes) -> float | None:
    """POSIX seconds of an HTTP-date; readers send back the same few Last-Modified values."""
    try:
        since = parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since.timestamp()


def not_modified(inm: bytes | None, ims: bytes | None, etag: bytes, modified: float) -> bool:
    if inm is not None:
        return _etag_matches(inm, etag)
    if ims is not None:
        since = _http_date(ims)
        return since is not None and modified <= since
    return False


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Header pairs as HTTP/1.1 header lines."""
    return b"".join(b"%s: %s\r\n" % pair for pair in headers)


@dataclass(frozen=True, slots=True)
class Variant:
    """One representation of a render (identity or gzip) with its response headers, built once:
    as ASGI header lists, and as HTTP/1.1 header lines for a server that writes them itself."""

    rendered: Rendered
    etag: bytes
    body: bytes
    full: list[tuple[bytes, bytes]]  # 200 headers
    common: list[tuple[bytes, bytes]]  # 304 headers
    full_lines: bytes
    common_lines: bytes


def make_variant(r: Rendered, gz: bool, max_age: int) -> Variant:
    etag = r.gzip_etag if gz else r.etag
    common = [
        (b"etag", etag),
        (b"last-modified", r.last_modified),
        (b"cache-control", b"public, max-age=%d" % max_age),
        (b"vary", b"Accept-Encoding"),
    ]
    body = r.gzip_body if gz else r.body
    full = [(b"content-type", r.content_type), (b"content-length", b"%d" % len(body)), *common]
    if gz:
        full.append((b"content-encoding", b"gzip"))
    return Variant(r, etag, body, full, common, header_lines(full), header_lines(common))


class FeedCache:
    def __init__(
        self,
        storage: Storage,
        settings: Callable[[], Settings],
        *,
        version_ttl: float = 1.0,
        hot: HotBoard | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.hot = hot or HotBoard(storage, settings)
        self.version_ttl = version_ttl
        self._entries: dict[CacheKey, Rendered] = {}
        self._pending: dict[CacheKey, asyncio.Future[Rendered]] = {}
        self._version: str | None = None
        self._checked = 0.0
        self.renders = 0  # for tests and metrics

    def invalidate(self) -> None:
        self._entries.clear()
        self._checked = 0.0

    def current(self, key: CacheKey) -> Rendered | None:
        """The cached render, if the data version was checked less than a TTL ago."""
        if time.monotonic() - self._checked >= self.version_ttl:
            return None
        return self._entries.get(key)

    async def _fresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.version_ttl:
            return
        self._checked = now
        version = await asyncio.to_thread(self.storage.data_version)
        if version != self._version:
            self._version = version
            self._entries.clear()
            self.hot.invalidate()

    async def get(self, scope: FeedScope, fmt: str, limit: int) -> Rendered:
        await self._fresh()
        key = (scope.path, fmt, limit, self.hot.generation if scope.hot else 0)
        cached = self._entries.get(key)
        if cached is not None:
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Rendered] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            rendered = await asyncio.to_thread(self._render, scope, fmt, limit)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters get it, nobody else must
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(rendered)
        if len(self._entries) >= MAX_CACHED:
            self._entries.clear()
        self._entries[key] = rendered
        return rendered

    def _render(self, scope: FeedScope, fmt: str, limit: int) -> Rendered:
        body, updated = render_scope(self.settings(), self.storage, scope, fmt, limit, self.hot)
        self.renders += 1
        return make_rendered(CONTENT_TYPES[fmt], body, updated)


def render_scope(
    settings: Settings,
    storage: Storage,
    scope: FeedScope,
    fmt: str,
    limit: int,
    hot: HotBoard | None = None,
) -> tuple[bytes, datetime]:
    """One feed document and the time of its newest change (what Last-Modified says)."""
    story_ids: list[str | None]
    if scope.kind == "source":  # a source's own feed: its items, cleaned
        stored = storage.list_items(source_ids=scope.source_ids, limit=limit)
        entries = to_entries(settings, stored)
        changes = [s.last_changed for s in stored]
        story_ids = [s.story_id for s in stored]
    else:  # merged feeds: one entry per story
        found = scope_stories(storage, scope, limit, settings, hot)
        entries = [story_entry(story, settings) for story in found]
        changes = [
            max(story.updated_at, *(m.stored.last_changed for m in story.members))
            for story in found
        ]
        story_ids = [story.id for story in found]
    if settings.related.limit:
        lists = storage.related_lists([sid for sid in story_ids if sid])
        entries = with_related(settings, entries, story_ids, lists)
    # The document changes when an item lands or changes, whatever dates the items carry.
    updated = max(changes, default=datetime(2000, 1, 1, tzinfo=UTC))
    return RENDERERS[fmt](feed_meta(settings, scope, updated), entries), updated


def scope_stories(
    storage: Storage,
    scope: FeedScope,
    limit: int,
    settings: Settings,
    hot: HotBoard | None = None,
) -> list[Story]:
    """The stories a merged feed shows: newest, or hottest for the hot feeds."""
    if scope.hot:
        board = hot or HotBoard(storage, lambda: settings)
        return storage.stories_by_ids(board.top(scope.ident or None, limit))
    if scope.kind == "section":
        return storage.list_stories(section_ids=scope.section_ids, limit=limit)
    return storage.list_stories(None if scope.kind == "all" else scope.source_ids, limit=limit)
