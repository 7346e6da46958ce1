"""Published feeds: ``FeedMeta`` plus ``FeedEntry`` values in, RSS 2.0 / Atom 1.0 / JSON Feed
1.1 bytes out. OPML lives in ``render_opml`` and is re-exported here, so that publishing has
one module to import.

Pure: no clock (every date comes from the values), no I/O. The three formats show the same
entry HTML, built once by ``entry_html``: the sanitized content, a visible credit to the
outlet that carried it, the other outlets that reported it, and the related-reading list.
Text is escaped there and nowhere else; URLs that are not http(s) are shown as text rather
than linked, so a bad URL in the data cannot become a ``javascript:`` link in a reader.

RSS and Atom are written by feedgen. Where it falls short it is extended, not patched:
feedgen 1.0 drops ``rel``/``title`` from entry links in Atom (lkiesow/python-feedgen#135),
so entry links are added by ``_AtomEntryLinks``; RSS has no author element for a name
without an e-mail address, so ``_RssItemExtras`` writes ``dc:creator`` (and the item dates,
see there). One generator is
built per format, so each format gets exactly the links and fields it should.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feedhub.core.normalize import plain_text
from feedhub.core.render_opml import OpmlOutline, parse_opml, render_opml
from feedhub.models import FeedEntry, FeedMeta

__all__ = [
    "RSS_SUFFIX",
    "ATOM_SUFFIX",
    "JSON_SUFFIX",
    "OpmlOutline",
    "author_name",
    "entry_html",
    "entry_title",
    "render_atom",
    "parse_opml",
    "render_json",
    "render_opml",
    "render_rss",
    "utc",
    "xml_safe",
]

RSS_SUFFIX = ".xml"
ATOM_SUFFIX = ".atom"
JSON_SUFFIX = ".json"

CREDIT_LABEL = "来源"
ALSO_LABEL = "同时报道"
RELATED_HEADING = "相关阅读"

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
_DC_NS = "http://purl.org/dc/elements/1.1/"
# Characters XML 1.0 cannot carry; a decoded character reference in a source feed can bring
# them in, and lxml refuses the whole document when it meets one.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINKABLE = frozenset({"http", "https"})
_SCHEME = re.compile(r"[\x00-\x20]*([A-Za-z][A-Za-z0-9+.-]*):")
_URL_NOISE = re.compile("[\t\n\r]")

Format = Literal["rss", "atom"]


# --- shared by every format ----------------------------------------------------------------


def entry_html(entry: FeedEntry) -> str:
    """The HTML every format shows for ``entry``: body, credit, also-reported-by, related.

    ``content_html``/``summary_html`` are already sanitized; names, titles and URLs are
    escaped here.
    """
    parts: list[str] = []
    body = entry.content_html or entry.summary_html
    if body:
        parts.append(body)
    if entry.sources:
        primary, *others = entry.sources
        credit = _anchor(primary.url or entry.link, primary.name)
        parts.append(f"<p>{CREDIT_LABEL}: {credit}</p>")
        if others:
            also = ", ".join(_anchor(source.url, source.name) for source in others)
            parts.append(f"<p>{ALSO_LABEL}: {also}</p>")
    if entry.related:
        items = "".join(f"<li>{_anchor(link.url, link.title)}</li>" for link in entry.related)
        parts.append(f"<h4>{RELATED_HEADING}</h4><ul>{items}</ul>")
    return "\n".join(parts)


def entry_title(entry: FeedEntry) -> str:
    """Atom requires a non-empty title; an untitled entry is named by its link or guid."""
    return entry.title.strip() or entry.link or entry.guid


def author_name(entry: FeedEntry, meta: FeedMeta) -> str:
    """The entry's byline, else the outlet that published it, else the feed itself.

    Atom requires an author on every entry of a feed that has none; a news entry without a
    byline is best credited to its outlet.
    """
    if entry.author and entry.author.strip():
        return entry.author.strip()
    if entry.sources:
        return entry.sources[0].name
    return meta.title


def utc(value: datetime) -> datetime:
    """``value`` in UTC to the second, the precision RSS has, so every format agrees."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: feed times must be aware")
    return value.astimezone(UTC).replace(microsecond=0)


def _anchor(url: str | None, text: str) -> str:
    label = html.escape(text)
    if not url or not _linkable(url):
        return label
    return f'<a href="{html.escape(url)}">{label}</a>'


def _linkable(url: str) -> bool:
    """True for http(s) and relative URLs. Tabs and line breaks are dropped first, as
    browsers drop them: split by a newline, ``javascript:`` is still a script link."""
    match = _SCHEME.match(_URL_NOISE.sub("", url))
    return match is None or match.group(1).lower() in _LINKABLE


# --- RSS 2.0 and Atom 1.0 through feedgen --------------------------------------------------


def render_rss(meta: FeedMeta, entries: Sequence[FeedEntry]) -> bytes:
    """RSS 2.0, UTF-8. Each item's ``guid`` (not a permalink) is the entry's stable guid."""
    return bytes(_generator(meta, entries, "rss").rss_str(encoding="UTF-8"))


def render_atom(meta: FeedMeta, entries: Sequence[FeedEntry]) -> bytes:
    """Atom 1.0, UTF-8. Entry ``id`` is the guid; related entries are ``rel="related"`` links."""
    return bytes(_generator(meta, entries, "atom").atom_str(encoding="UTF-8"))


def _generator(meta: FeedMeta, entries: Sequence[FeedEntry], fmt: Format) -> Any:
    fg = FeedGenerator()
    suffix, media_type = (
        (RSS_SUFFIX, "application/rss+xml")
        if fmt == "rss"
        else (ATOM_SUFFIX, "application/atom+xml")
    )
    fg.id(xml_safe(meta.self_url))
    fg.title(xml_safe(meta.title))
    fg.description(xml_safe(meta.description or meta.title))  # RSS requires one; Atom's subtitle
    # Order matters: feedgen takes the last link added as RSS's <link>.
    fg.link(href=xml_safe(meta.self_url + suffix), rel="self", type=media_type)
    fg.link(href=xml_safe(meta.home_url), rel="alternate", type="text/html")
    fg.language(xml_safe(meta.language))
    fg.generator(xml_safe(meta.generator))
    updated = utc(meta.updated)
    fg.updated(updated)
    fg.lastBuildDate(updated)  # feedgen's default is the wall clock
    fg.ttl(meta.ttl_minutes)
    if fmt == "rss":
        fg.register_extension("feedhub_rss", _RssNamespaces, _RssItemExtras, atom=False, rss=True)
    else:
        fg.register_extension("feedhub_atom", BaseExtension, _AtomEntryLinks, atom=True, rss=False)
    for entry in entries:
        _add_entry(fg, meta, entry, fmt)
    return fg


def _add_entry(fg: Any, meta: FeedMeta, entry: FeedEntry, fmt: Format) -> None:
    fe = fg.add_entry(order="append")
    fe.guid(xml_safe(entry.guid), permalink=False)
    fe.title(xml_safe(entry_title(entry)))
    published = utc(entry.published)
    fe.updated(utc(entry.updated))
    if entry.section_title:
        fe.category(term=xml_safe(entry.section_title))
    body = xml_safe(entry_html(entry))
    author = xml_safe(author_name(entry, meta))
    if fmt == "rss":
        if entry.link:
            fe.link(href=xml_safe(entry.link), rel="alternate")
        if body:  # an item needs a title or a description, and the title is always there
            fe.description(body)
        fe.feedhub_rss.published = published
        fe.feedhub_rss.creator = author
        return
    fe.published(published)
    fe.content(body, type="html")
    if entry.content_html and entry.summary_html:
        fe.summary(xml_safe(entry.summary_html), type="html")
    fe.author(name=author)
    links: list[dict[str, str]] = []
    if entry.link:
        links.append({"rel": "alternate", "type": "text/html", "href": xml_safe(entry.link)})
    for related in entry.related:
        if _linkable(related.url):  # as in the HTML list
            links.append(
                {"rel": "related", "href": xml_safe(related.url), "title": xml_safe(related.title)}
            )
    fe.feedhub_atom.links = links


# --- JSON Feed 1.1 ---------------------------------------------------------------------------


def render_json(meta: FeedMeta, entries: Sequence[FeedEntry]) -> bytes:
    """JSON Feed 1.1, UTF-8 with non-ASCII text kept as is.

    ``_feedhub`` on each item carries what the other formats can only show as HTML: the
    section id, every source (primary first) and the related entries, for clients that want
    them as data.
    """
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": meta.title,
        "home_page_url": meta.home_url,
        "feed_url": meta.self_url + JSON_SUFFIX,
    }
    if meta.description:
        feed["description"] = meta.description
    if meta.language:
        feed["language"] = meta.language
    feed["items"] = [_json_item(meta, entry) for entry in entries]
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_item(meta: FeedMeta, entry: FeedEntry) -> dict[str, Any]:
    item: dict[str, Any] = {"id": entry.guid}
    if entry.link:
        item["url"] = entry.link
    item["title"] = entry_title(entry)
    item["content_html"] = entry_html(entry)
    summary = plain_text(entry.summary_html) if entry.summary_html else ""
    if summary:
        item["summary"] = summary
    item["date_published"] = _rfc3339(entry.published)
    item["date_modified"] = _rfc3339(entry.updated)
    item["authors"] = [{"name": author_name(entry, meta)}]
    if entry.section_title:
        item["tags"] = [entry.section_title]
    item["_feedhub"] = {
        "section": entry.section_id,
        "sources": [{"id": s.id, "name": s.name, "url": s.url} for s in entry.sources],
        "related": [{"id": r.id, "title": r.title, "url": r.url} for r in entry.related],
    }
    return item


def _rfc3339(value: datetime) -> str:
    return utc(value).isoformat().replace("+00:00", "Z")


# --- helpers ---------------------------------------------------------------------------------


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry (lxml refuses them)."""
    return _NOT_XML.sub("", text)


class _RssNamespaces(BaseExtension):  # type: ignore[misc]
    """Declares ``dc`` on the RSS root for ``_RssItemExtras``."""

    def extend_ns(self) -> dict[str, str]:
        return {"dc": _DC_NS}


class _RssItemExtras(BaseEntryExtension):  # type: ignore[misc]
    """``<pubDate>`` and ``<dc:creator>`` of an RSS item.

    feedgen formats each item's date by switching the process-wide locale to C and back,
    which is slow and races with any other thread that reads the locale meanwhile;
    ``email.utils`` writes RFC 822 dates without touching it. RSS's own
    ``<author>`` must be an e-mail address, so the byline goes in ``dc:creator``.
    """

    def __init__(self) -> None:
        self.published: datetime | None = None
        self.creator: str | None = None

    def extend_rss(self, item: etree._Element) -> etree._Element:
        if self.published is not None:
            etree.SubElement(item, "pubDate").text = format_datetime(self.published)
        if self.creator:
            etree.SubElement(item, f"{{{_DC_NS}}}creator").text = self.creator
        return item


class _AtomEntryLinks(BaseEntryExtension):  # type: ignore[misc]
    """Entry ``<link>`` elements with their ``rel``, ``type`` and ``title`` kept."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        # feedgen builds Atom elements without a namespace and declares it on the root.
        for attributes in self.links:
            etree.SubElement(entry, "link", attrib=attributes)
        return entry
