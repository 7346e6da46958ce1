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
from feedhub.core.parse import parse_feed
from feedhub.core.searchterms import item_terms
from feedhub.models import ParsedFeed
from feedhub.stories import item_fingerprint

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
    items = tuple(
        replace(
            item,
            fingerprint=None
            if dedupe is None
            else item_fingerprint(item, item.published or now, dedupe),
            search_terms=item_terms(item.title, item.summary, item.content) if terms else None,
        )
        for item in feed.items
    )
    return replace(feed, items=items)
