"""What a parse worker process runs: parse one document, fingerprint and index its items.

Kept apart from ``pipeline`` so that a worker imports the parser and the fingerprint code
(about 0.8 s of CPU and 70 MiB), not the fetcher, related reading and the categorizer that the
pipeline module pulls in too (about 1.2 s and 110 MiB), and so that the forkserver can import it
once for all workers (``PRELOAD``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import datetime
from operator import attrgetter

from feedhub.core.dedupe import DedupeSettings
from feedhub.core.parse import parse_feed
from feedhub.core.searchterms import items_terms
from feedhub.core.similarity import fingerprints as make_fingerprints
from feedhub.core.textnorm import html_to_text
from feedhub.models import Item, ParsedFeed
from feedhub.stories import item_doc

PRELOAD = [__name__]
NICENESS = 5  # added to a worker process's niceness


def lower_priority() -> None:
    """A worker process's initializer: parsing yields the CPU to the process that stores
    what it parses (and to a web process on the same machine). In a big poll every item waits
    for the one store thread; at equal priority it shared two cores evenly with two busy
    workers and the cycle ran at its pace (1,000 new feeds: 40 s at equal priority, 36 s with
    the workers niced)."""
    try:
        os.nice(NICENESS)
    except OSError:  # not allowed here: parse at the same priority
        pass


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
    try:
        extras = items_extras(feed.items, now, dedupe, terms=terms)
    except Exception:  # raised again below, item by item, as it always was
        extras = [item_extras(item, now, dedupe, terms=terms) for item in feed.items]
    items = tuple(
        _with_extras(item, fingerprint, search_terms)
        for item, (fingerprint, search_terms) in zip(feed.items, extras, strict=True)
    )
    return replace(feed, items=items)


def items_extras(
    items: Sequence[Item], now: datetime, dedupe: DedupeSettings | None, *, terms: bool
) -> list[tuple[bytes | None, str | None]]:
    """``item_extras`` of each item, the same values, with the array work of all of them done
    at once (``fingerprints``, ``items_terms``): most of the cost of a document's extras."""
    if dedupe is None:
        if not terms:
            return [(None, None)] * len(items)
        found = items_terms([(item.title, item.summary, item.content) for item in items])
        return [(None, term) for term in found]
    docs = [item_doc(item, item.published or now) for item in items]
    plains = [html_to_text(doc.text) for doc in docs]
    prints = [fp.to_bytes() for fp in make_fingerprints(docs, dedupe, plains=plains)]
    if not terms:
        return [(fp, None) for fp in prints]
    found = items_terms(
        [(item.title, item.summary, item.content) for item in items],
        known=[(doc.text, plain) for doc, plain in zip(docs, plains, strict=True)],
    )
    return list(zip(prints, found, strict=True))


def item_extras(
    item: Item, now: datetime, dedupe: DedupeSettings | None, *, terms: bool
) -> tuple[bytes | None, str | None]:
    """The fingerprint (with ``dedupe``) and the search terms (with ``terms``) of one item,
    exactly as ``item_fingerprint`` and ``item_terms`` make them (its body's HTML turned into
    text once for both): what one item of a document whose batch failed is given, so that an
    error is the first bad item's own."""
    return items_extras([item], now, dedupe, terms=terms)[0]


# Item's fields as ``replace`` would copy them, read with one call.
_COPIED = [f.name for f in fields(Item) if f.init and f.name not in ("fingerprint", "search_terms")]
_READ = attrgetter(*_COPIED)


def _with_extras(item: Item, fingerprint: bytes | None, search_terms: str | None) -> Item:
    """``replace(item, fingerprint=..., search_terms=...)`` without its generic field walk."""
    return Item(
        **dict(zip(_COPIED, _READ(item), strict=True)),
        fingerprint=fingerprint,
        search_terms=search_terms,
    )
