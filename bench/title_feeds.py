"""RSS documents of labelled titles, for the benchmarks that serve the corpus as feeds
(``categorize_pipeline.py``, ``related.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape


def feed_path(source: str) -> str:
    """An ASCII path for a source (source ids hold section names in Chinese)."""
    return "/" + source.encode().hex() + ".xml"


def rss_document(source: str, entries: Iterable[tuple[str, str, datetime]]) -> bytes:
    """RSS 2.0 of ``(guid, title, published)`` entries: titles only (the corpus has no text),
    each with a guid, a link and a pubDate."""
    body = "".join(
        f'<item><guid isPermaLink="false">{escape(guid)}</guid>'
        f"<title>{escape(title)}</title>"
        f"<link>https://news.example.cn/{source}/{escape(guid)}.html</link>"
        f"<pubDate>{format_datetime(when)}</pubDate></item>"
        for guid, title, when in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{source}</title><link>https://news.example.cn/{source}/</link>"
        f"<description>bench</description>{body}</channel></rss>"
    ).encode()
