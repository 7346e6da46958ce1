"""Feed bytes plus response headers in, a ``ParsedFeed`` of normalized items out.

This is the only module that imports feedparser, and feedparser never sees anything but
bytes: the document is decoded here first (feedparser guesses wrong on undeclared or
mis-declared Chinese encodings), handed over as UTF-8 with its own sanitizer and URI
resolver switched off (nh3 sanitizes once, several times faster), and its dict is turned
into feedhub's frozen values at once. Dates are read from the raw strings by
``core.dates``, not from feedparser's ``*_parsed``. JSON Feed is read here directly, since
feedparser 6.0 does not know it.

A document that yields no feed at all raises ``ParseError``; a feed that is merely
ill-formed but still yields entries is kept, and its problems become ``warnings``.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import feedparser

from feedhub.core import dates
from feedhub.core.normalize import (
    build_item,
    decode_document,
    http_url,
    plain_text,
    repair_xml_entities,
    sanitize_html,
    stable_entry_id,
    text_to_html,
)
from feedhub.errors import ParseError
from feedhub.models import Item, ParsedFeed

__all__ = ["parse_feed"]

FUTURE_SLACK = timedelta(days=1)  # clocks and zones disagree a little; more is a wrong date
OLDEST = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_WARNINGS = 20
_TITLE_FROM_TEXT = 80
_DAYS = {
    name: number
    for number, name in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
_HOUR = re.compile(r"<hour>\s*(\d{1,2})\s*</hour>", re.IGNORECASE)
_DAY = re.compile(r"<day>\s*([A-Za-z]+)\s*</day>", re.IGNORECASE)
_HTML_START = re.compile(
    r"(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
_FEED_OPTIONS = {"sanitize_html": False, "resolve_relative_uris": False}


def parse_feed(
    content: bytes,
    headers: Mapping[str, str],
    *,
    url: str,
    source_id: str,
    now: datetime,
    default_timezone: str,
    encoding: str | None = None,
) -> ParsedFeed:
    """Parse one fetched document.

    ``url`` is where the bytes came from (the base for relative links), ``default_timezone``
    the zone for times written without one, ``encoding`` the operator's override of the
    document's charset. Raises ``ParseError`` when the document is not a feed at all.
    """
    if not content or not content.strip():
        raise ParseError(url, "empty document")
    lowered = {key.lower(): value for key, value in headers.items()}
    charset = _charset(lowered.get("content-type", ""))
    try:
        decoded = decode_document(content, http_charset=charset, override=encoding)
    except LookupError as exc:
        raise ParseError(url, f"unknown encoding {encoding!r} configured for the source") from exc
    try:
        tz = dates.zone(default_timezone)
    except (ValueError, LookupError) as exc:  # ZoneInfoNotFoundError is a LookupError
        raise ParseError(url, f"unknown time zone {default_timezone!r}") from exc
    run = _Run(url=url, source_id=source_id, now=now, tz=tz)
    run.warnings.extend(decoded.warnings)
    if decoded.text.startswith("{"):
        return _parse_json(decoded.text, decoded.encoding, run)
    return _parse_xml(decoded.text, decoded.encoding, lowered, run)


@dataclass
class _Run:
    """What one parse carries through its entries."""

    url: str
    source_id: str
    now: datetime
    tz: tzinfo
    lang: str | None = None
    warnings: list[str] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def problem(self, kind: str, example: str = "") -> None:
        """Count a per-entry problem once per kind, so a feed of 100 odd dates warns once."""
        self.problems[kind] += 1
        self.examples.setdefault(kind, example)

    def all_warnings(self) -> tuple[str, ...]:
        counted = []
        for kind, count in self.problems.items():
            example = f" e.g. {self.examples[kind][:40]!r}" if self.examples[kind] else ""
            counted.append(f"{kind}{example} ({count} entries)")
        return tuple((self.warnings + counted)[:_MAX_WARNINGS])


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


# --- RSS and Atom, through feedparser --------------------------------------------------


def _parse_xml(text: str, encoding: str, headers: Mapping[str, str], run: _Run) -> ParsedFeed:
    # No Content-Location: feedparser would resolve opaque guids against it as if they were
    # relative URLs, and ids must not depend on where the feed happened to be fetched from.
    fp_headers = {"content-type": "application/xml; charset=utf-8"}
    if headers.get("content-language"):
        fp_headers["content-language"] = headers["content-language"]
    try:
        result: Any = feedparser.parse(
            io.BytesIO(repair_xml_entities(text).encode("utf-8")),
            response_headers=fp_headers,
            **_FEED_OPTIONS,
        )
    except Exception as exc:  # feedparser's own bugs on hostile input must not escape
        raise ParseError(run.url, f"feedparser failed: {type(exc).__name__}: {exc}") from exc
    feed: Mapping[str, Any] = _g(result, "feed") or {}
    entries: list[Any] = _g(result, "entries") or []
    version: str = _g(result, "version") or ""
    bozo = _g(result, "bozo_exception") if _g(result, "bozo") else None
    kept = [entry for entry in entries if _has_substance(entry)]
    if not kept and (not version or (bozo is not None and not _g(feed, "title"))):
        raise ParseError(run.url, _why_not_a_feed(text, version, bozo))
    if bozo is not None:
        run.warnings.append(f"not well-formed XML: {_describe(bozo)}")
    run.lang = _str(_g(feed, "language")) or _str(headers.get("content-language"))
    if len(kept) < len(entries):
        run.warnings.append(f"{len(entries) - len(kept)} empty entries skipped")
    items = [_item_from_entry(entry, run) for entry in kept]
    skip_hours, skip_days = _skips(text)
    return ParsedFeed(
        title=_text(_g(feed, "title"), _g(feed, "title_detail")) or None,
        link=http_url(_g(feed, "link"), run.url),
        language=run.lang,
        version=version or "unknown",
        encoding=encoding,
        items=_dedupe(items, run),
        ttl_minutes=_ttl(_g(feed, "ttl")),
        skip_hours=skip_hours,
        skip_days=skip_days,
        warnings=run.all_warnings(),
    )


def _item_from_entry(entry: Mapping[str, Any], run: _Run) -> Item:
    link = http_url(_g(entry, "link"), run.url)
    base = link or run.url
    summary_raw = _str(_g(entry, "summary"))
    content_raw, content_detail = _pick_content(_g(entry, "content"))
    content = _html(content_raw, content_detail, base)
    if summary_raw == content_raw:
        summary = content
    else:
        summary = _html(summary_raw, _g(entry, "summary_detail"), base)
    published_raw = _str(_g(entry, "published")) or _str(_g(entry, "created"))
    updated_raw = _str(_g(entry, "updated"))
    author_detail = _g(entry, "author_detail") or {}
    author = _text(_g(author_detail, "name") or _g(entry, "author"), None) or None
    categories = [
        _text(_g(tag, "term") or _g(tag, "label"), None) for tag in _g(entry, "tags") or []
    ]
    return _finish_item(
        run,
        guid=_str(_g(entry, "id")),
        link=link,
        title=_text(_g(entry, "title"), _g(entry, "title_detail")),
        author=author,
        summary=summary,
        content=content,
        published_raw=published_raw,
        updated_raw=updated_raw,
        categories=categories,
    )


def _has_substance(entry: Mapping[str, Any]) -> bool:
    """Whether an entry says anything; some CMSs emit empty ``<item/>`` placeholders."""
    keys = ("title", "link", "id", "summary")
    return any(_str(_g(entry, key)) for key in keys) or bool(_g(entry, "content"))


def _pick_content(parts: Any) -> tuple[str | None, Mapping[str, Any] | None]:
    """The first HTML part of ``content``, else the first part."""
    if not parts:
        return None, None
    chosen = next((p for p in parts if "html" in (_g(p, "type") or "")), parts[0])
    return _str(_g(chosen, "value")), chosen


def _html(value: str | None, detail: Mapping[str, Any] | None, base: str) -> str | None:
    if not value or not value.strip():
        return None
    kind = _g(detail, "type") or "text/html"
    if "html" not in kind:
        value = text_to_html(value)
    own_base = _g(detail, "base") or ""
    if own_base.startswith(("http://", "https://")):
        base = own_base  # an xml:base on the element itself
    return sanitize_html(value, base) or None


def _text(value: Any, detail: Mapping[str, Any] | None) -> str:
    if not isinstance(value, str) or not value:
        return ""
    kind = _g(detail, "type") or "text/html"
    return plain_text(value, is_html="html" in kind)


def _skips(text: str) -> tuple[frozenset[int], frozenset[int]]:
    """``<skipHours>``/``<skipDays>``, which feedparser flattens to their last value."""
    hours: set[int] = set()
    days: set[int] = set()
    block = _block(text, "skipHours")
    if block:
        hours = {int(h) % 24 for h in _HOUR.findall(block) if int(h) <= 24}
    block = _block(text, "skipDays")
    if block:
        days = {_DAYS[d.lower()] for d in _DAY.findall(block) if d.lower() in _DAYS}
    return frozenset(hours), frozenset(days)


def _block(text: str, tag: str) -> str | None:
    start = text.find("<" + tag)
    if start < 0:
        return None
    end = text.find("</" + tag, start)
    return text[start : end if end > 0 else start + 2000]


def _ttl(value: Any) -> int | None:
    try:
        minutes = int(str(value).strip())
    except ValueError:
        return None
    return minutes if minutes > 0 else None


def _why_not_a_feed(text: str, version: str, bozo: BaseException | None) -> str:
    if _HTML_START.match(text[:4096]):
        return "an HTML page, not a feed"
    if version:
        return f"{version} document without entries that is not well-formed: {_describe(bozo)}"
    if bozo is not None:
        return f"not a feed: {_describe(bozo)}"
    return "not a feed: no RSS, Atom or JSON Feed root element"


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown problem"
    message = str(exc) or type(exc).__name__
    return message[:200]


# --- JSON Feed -----------------------------------------------------------------------


def _parse_json(text: str, encoding: str, run: _Run) -> ParsedFeed:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParseError(run.url, f"not a feed: invalid JSON: {exc}") from exc
    version_url = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version_url, str) or "jsonfeed.org/version/" not in version_url:
        raise ParseError(run.url, "not a feed: JSON without a jsonfeed.org version")
    raw_items = data.get("items")
    if not isinstance(raw_items, list):
        raise ParseError(run.url, "JSON Feed without an items list")
    run.lang = _str(data.get("language"))
    items = [_item_from_json(entry, run) for entry in raw_items if isinstance(entry, dict)]
    return ParsedFeed(
        title=_text(data.get("title"), {"type": "text/plain"}) or None,
        link=http_url(_str(data.get("home_page_url")), run.url),
        language=run.lang,
        version="json11" if version_url.rstrip("/").endswith("1.1") else "json10",
        encoding=encoding,
        items=_dedupe(items, run),
        warnings=run.all_warnings(),
    )


def _item_from_json(entry: Mapping[str, Any], run: _Run) -> Item:
    link = http_url(_str(entry.get("url")) or _str(entry.get("external_url")), run.url)
    base = link or run.url
    content_html, content_text = _str(entry.get("content_html")), _str(entry.get("content_text"))
    if content_html:
        content = sanitize_html(content_html, base) or None
    else:
        content = text_to_html(content_text) if content_text else None
    summary_text = _str(entry.get("summary"))
    candidates = [*_list(entry.get("authors")), entry.get("author")]
    names = [_str(a.get("name")) for a in candidates if isinstance(a, dict)]
    author = next((plain_text(n, is_html=False) for n in names if n), None)
    tags = _list(entry.get("tags"))
    raw_id = entry.get("id")
    guid = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
    return _finish_item(
        run,
        guid=guid,
        link=link,
        title=_text(entry.get("title"), {"type": "text/plain"}),
        author=author,
        summary=text_to_html(summary_text) if summary_text else None,
        content=content,
        published_raw=_str(entry.get("date_published")),
        updated_raw=_str(entry.get("date_modified")),
        categories=[plain_text(t, is_html=False) for t in tags if isinstance(t, str)],
    )


# --- shared -----------------------------------------------------------------------------


def _finish_item(
    run: _Run,
    *,
    guid: str | None,
    link: str | None,
    title: str,
    author: str | None,
    summary: str | None,
    content: str | None,
    published_raw: str | None,
    updated_raw: str | None,
    categories: list[str],
) -> Item:
    if not title:
        text = plain_text(summary or content or "")
        title = text[:_TITLE_FROM_TEXT].rstrip() + ("…" if len(text) > _TITLE_FROM_TEXT else "")
    updated = _date(updated_raw, run)
    published = _date(published_raw, run) or updated
    entry_id = stable_entry_id(
        guid, link, title=title, summary=summary, content=content, published=published_raw
    )
    return build_item(
        source_id=run.source_id,
        entry_id=entry_id,
        link=link,
        title=title,
        author=author,
        summary=summary,
        content=content,
        published=published,
        updated=updated,
        categories=categories,
    )


def _date(raw: str | None, run: _Run) -> datetime | None:
    if not raw:
        return None
    value = dates.parse_date(raw, run.tz, lang=run.lang)
    if value is None:
        run.problem("unrecognised date ignored", raw)
    elif value > run.now + FUTURE_SLACK:
        run.problem("date more than a day in the future ignored", raw)
        return None
    elif value < OLDEST:
        run.problem("date before 1970 ignored", raw)
        return None
    return value


def _dedupe(items: list[Item], run: _Run) -> tuple[Item, ...]:
    """One item per entry id (the first): storage keys on it, and some feeds repeat entries."""
    seen: dict[str, Item] = {}
    for item in items:
        if item.entry_id in seen:
            run.problem("repeated entry id; later copy dropped", item.entry_id)
        else:
            seen[item.entry_id] = item
    return tuple(seen.values())


def _g(mapping: Any, key: str) -> Any:
    """``mapping[key]`` or None, bypassing FeedParserDict's key aliases and their
    DeprecationWarning (its ``updated`` silently falls back to ``published``)."""
    return dict.get(mapping, key) if isinstance(mapping, dict) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None
