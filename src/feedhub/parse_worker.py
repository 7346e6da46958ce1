"""What a parse worker process runs: parse one document, fingerprint and index its items.

Kept apart from ``pipeline`` so that a worker imports the parser and the fingerprint code
(about 0.8 s of CPU and 70 MiB), not the fetcher, related reading and the categorizer that the
pipeline module pulls in too (about 1.2 s and 110 MiB), and so that the forkserver can import it
once for all workers (``PRELOAD``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from feedhub.core.dedupe import DedupeSettings
from feedhub.core.dedupe import fingerprint as make_fingerprint
from feedhub.core.parse import parse_feed
from feedhub.core.searchterms import item_terms
from feedhub.core.textnorm import html_to_text
from feedhub.models import Item, ParsedFeed
from feedhub.stories import item_doc

PRELOAD = [__name__]


def parse_job(
    content: bytes,
    headers: dict[str, str],
    url: str,
    source_id: str,
    now: datetime,
    timezone: str,
    encoding: str | None,
    dedupe: DedupeSettings | None = None,
    terms: bool = False,
) -> ParsedFeed:
    """Parse one document; in a worker process also fingerprint its items for the clusterer
    (with ``dedupe``) and make their search terms (with ``terms``): a module-level function so
    that a worker process can do all of it."""
    feed = parse_feed(
        content,
        headers,
        url=url,
        source_id=source_id,
        now=now,
        default_timezone=timezone,
        encoding=encoding,
    )
    if (dedupe is None and not terms) or not feed.items:
        return feed
    items = []
    for item in feed.items:
        fingerprint, search_terms = item_extras(item, now, dedupe, terms=terms)
        items.append(replace(item, fingerprint=fingerprint, search_terms=search_terms))
    return replace(feed, items=tuple(items))


def item_extras(
    item: Item, now: datetime, dedupe: DedupeSettings | None, *, terms: bool
) -> tuple[bytes | None, str | None]:
    """The fingerprint (with ``dedupe``) and the search terms (with ``terms``) of one item,
    exactly as ``item_fingerprint`` and ``item_terms`` make them, but with the body's HTML
    turned into text once for both."""
    if dedupe is None:
        return None, item_terms(item.title, item.summary, item.content) if terms else None
    # What ``item_fingerprint`` does, keeping the body's text for the terms.
    doc = item_doc(item, item.published or now)
    plain = html_to_text(doc.text)
    fingerprint = make_fingerprint(doc, dedupe, plain=plain).to_bytes()
    if not terms:
        return fingerprint, None
    known = (doc.text, plain)
    return fingerprint, item_terms(item.title, item.summary, item.content, known=known)
