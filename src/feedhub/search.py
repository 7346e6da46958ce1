"""Keeping the full-text index current, in the worker: new and changed items get their
search terms (``feedhub.core.searchterms``); the database's own index does the rest."""

from __future__ import annotations

import logging
from datetime import datetime

from feedhub.core.searchterms import MAX_TEXT, index_terms
from feedhub.core.textnorm import html_to_text
from feedhub.storage.base import Storage

log = logging.getLogger("feedhub.search")

BATCH = 1000


class Indexer:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def run(self, now: datetime) -> int:
        """Index every item waiting; return how many were indexed."""
        done = 0
        while True:
            due = self.storage.items_to_index(BATCH)
            if not due:
                break
            rows = [
                (pk, index_terms(title, html_to_text(body[: MAX_TEXT * 4]) if body else ""))
                for pk, title, body in due
            ]
            done += self.storage.index_items(rows, now)
        if done:
            log.info("indexed for search", extra={"items": done})
        return done
