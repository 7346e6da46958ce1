"""Keeping the full-text index current: items get their search terms
(``feedhub.core.searchterms``) beside the parse when it runs in a worker process, else (and
after a change) from the indexer after the poll; the database's own index does the rest."""

from __future__ import annotations

import logging
from datetime import datetime

from feedhub.core.searchterms import item_terms
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
            rows = [(pk, item_terms(title, body, None)) for pk, title, body in due]
            done += self.storage.index_items(rows, now)
        if done:
            log.info("indexed for search", extra={"items": done})
        return done
