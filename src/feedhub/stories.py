"""Putting stored items into stories, in the worker, with the database as the truth.

Every item gets a story exactly once. The clusterer keeps an in-memory index of the recent
items (the deduplication window), fed from the database by primary key, so items another worker
clustered are seen too; a restart rebuilds it from the stored fingerprints. Items not yet in a
story (``story_id`` NULL) are the work queue: a crash between storing an item and clustering it
only delays it to the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from feedhub.core.dedupe import DedupeSettings, Doc, Fingerprint, StoryIndex, fingerprint
from feedhub.models import Item, StoryAssignment, StoryLink, StoryPlacement
from feedhub.settings import Settings, StorySettings
from feedhub.storage.base import Placer, Storage

log = logging.getLogger("feedhub.stories")

BATCH = 500
LOAD_SLACK = timedelta(days=1)  # items first seen a little before the window may still match
LOAD_EVERY = 60.0  # seconds between reads of what other pollers clustered, while placing


def item_doc(item: Item, published: datetime) -> Doc:
    """An item as deduplication sees it: the same fields wherever it is fingerprinted."""
    return Doc(
        key=item.key,
        source_id=item.source_id,
        title=item.title,
        text=item.content or item.summary or "",
        link=item.link,
        published=published,
    )


def item_fingerprint(item: Item, published: datetime, settings: DedupeSettings) -> bytes:
    """What the clusterer compares, made from the stored form of the item."""
    return fingerprint(item_doc(item, published), settings).to_bytes()


def dedupe_settings(stories: StorySettings) -> DedupeSettings:
    return DedupeSettings(
        window_seconds=stories.window,
        text_threshold=stories.text_threshold,
        text_alone_threshold=stories.text_alone_threshold,
        title_threshold=stories.title_threshold,
        same_source_threshold=stories.same_source_threshold,
        fact_conflict_ratio=stories.fact_conflict_ratio,
    )


class Clusterer:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self._placed = 0
        self.apply(settings)

    def apply(self, settings: Settings) -> None:
        """Take (new) story settings; a new fingerprint scheme means a fresh index."""
        dedupe = dedupe_settings(settings.stories)
        current = getattr(self, "dedupe", None)
        self.dedupe = dedupe
        if current is None or current.scheme != dedupe.scheme or current != dedupe:
            self.index = StoryIndex(dedupe)
            self.last_pk = 0
            self._newest = 0.0
            self._loaded_at: float | None = None
            self._tail = 0  # the largest item pk right after this clusterer's last insert

    @contextmanager
    def placing(self, now: datetime) -> Iterator[Placer]:
        """A ``Placer`` for one ``record_poll`` at ``now``, in the thread that runs the
        clusterer: new items are matched and added to the index as they are stored, so they are
        written once, already in their story. If the write fails, they leave the index again
        (and stay out of storage, as the transaction rolled back)."""
        loaded = self._loaded_at is None or time.monotonic() - self._loaded_at >= LOAD_EVERY
        if loaded:
            self._load(now)
        placing = _Placing(self, now, loaded)
        try:
            yield placing
        except BaseException:
            placing.undo()
            raise
        self._placed += placing.count
        self._evict(now)

    def take_placed(self) -> int:
        """Items placed as they were stored since the last call (for poll reports)."""
        placed, self._placed = self._placed, 0
        return placed

    def _load(self, now: datetime) -> None:
        self._loaded_at = time.monotonic()
        since = now - timedelta(seconds=self.dedupe.window_seconds) - LOAD_SLACK
        entries = self.storage.window_entries(self.last_pk, since)
        fresh = []
        for entry in entries:
            self.last_pk = max(self.last_pk, entry.pk)
            if entry.key in self.index:
                continue
            try:
                fp = Fingerprint.from_bytes(entry.fingerprint)
            except ValueError:
                continue  # an older fingerprint version: that item no longer matches
            if fp.scheme != self.dedupe.scheme:
                continue
            fresh.append((entry.key, entry.story_id, fp, entry.published))
        if fresh:
            self.index.add_many(fresh)

    def run(self, now: datetime) -> int:
        """Cluster every item waiting for a story; return how many were placed."""
        placed = 0
        loaded = False
        while True:
            pending = self.storage.pending_items(BATCH)
            if not pending:
                break
            if not loaded:  # nothing pending, nothing to load: a quiet cycle costs one query
                self._load(now)
                loaded = True
            assignments = []
            # Within a batch the earliest published founds the story: polled together, the
            # original outlet's item comes first whatever order the sources answered in.
            for p in sorted(pending, key=lambda p: (p.stored.published, p.pk)):
                item, published = p.stored.item, p.stored.published
                fp = self._stored(p.fingerprint) or fingerprint(
                    item_doc(item, published), self.dedupe
                )
                story_id, new, link = self._join(item.key, fp, published)
                assignments.append(
                    StoryAssignment(p.pk, story_id, new, fp.to_bytes(), link, published)
                )
            placed += self.storage.assign_stories(assignments, now)
            self.last_pk = max(self.last_pk, max(p.pk for p in pending))
        self._evict(now)
        if placed:
            log.info("clustered", extra={"items": placed, "window": len(self.index)})
        return placed

    def _join(self, key: str, fp: Fingerprint, published: datetime) -> tuple[str, bool, StoryLink]:
        """Match one item against the index and add it there: its story, whether it founds
        it, and why it joined."""
        match = self.index.match(fp, published)
        if match is None:
            story_id, link, new = key, StoryLink(), True
        else:
            story_id, new = match.story_id, False
            link = StoryLink(
                match.reason,
                match.key,
                round(match.score, 4),
                round(match.title_similarity, 4),
                round(match.text_similarity, 4),
            )
        self.index.add(key, story_id, fp, published)
        self._newest = max(self._newest, published.timestamp())
        return story_id, new, link

    def _stored(self, data: bytes | None) -> Fingerprint | None:
        """The fingerprint made at parse time, if it was made under the current scheme."""
        if data is None:
            return None
        try:
            fp = Fingerprint.from_bytes(data)
        except ValueError:
            return None
        return fp if fp.scheme == self.dedupe.scheme else None

    def _evict(self, now: datetime) -> None:
        """Forget items older than the window, measured from the newest item seen (feeds with
        old dates, like an archive being read in, still deduplicate among themselves)."""
        newest = max(self._newest, 0.0)
        if newest:
            horizon = datetime.fromtimestamp(newest, now.tzinfo) - timedelta(
                seconds=2 * self.dedupe.window_seconds
            )
            self.index.evict_before(horizon)


class _Placing:
    """One ``record_poll``'s placer (see ``Clusterer.placing``)."""

    def __init__(self, clusterer: Clusterer, now: datetime, loaded: bool) -> None:
        self._clusterer = clusterer
        self._now = now
        self._loaded = loaded  # the index caught up with storage just before this poll
        self._keys: list[str] = []
        self._saved = (clusterer.last_pk, clusterer._tail, clusterer._newest)

    def place(self, items: Sequence[Item]) -> dict[str, StoryPlacement]:
        """As ``Clusterer.run`` would place them once stored: an item without a published time
        is stored with ``now``, and the earliest published of the poll comes first."""
        clusterer, now = self._clusterer, self._now
        placements = {}
        for _, _, item in sorted((it.published or now, i, it) for i, it in enumerate(items)):
            published = item.published or now
            stored = clusterer._stored(item.fingerprint)
            try:
                fp = stored or fingerprint(item_doc(item, published), clusterer.dedupe)
                story_id, new, link = clusterer._join(item.key, fp, published)
            except Exception:  # a bug must not cost the poll its items: this one waits
                log.exception("placing failed", extra={"item": item.key})
                continue
            self._keys.append(item.key)
            data = item.fingerprint if stored is not None and item.fingerprint else fp.to_bytes()
            placements[item.key] = StoryPlacement(story_id, new, data, link, published)
        if placements:
            log.debug("placed", extra={"items": len(placements)})
        return placements

    def stored(self, max_pk_before: int | None, max_pk_after: int | None) -> None:
        """When nobody else inserted items since the index last caught up with storage, it
        now holds every clustered item up to ``max_pk_after``: the next load starts after
        them instead of reading this poller's own items back."""
        clusterer = self._clusterer
        if max_pk_after is None:
            return
        before = max_pk_before or 0
        if self._loaded or before in (clusterer.last_pk, clusterer._tail):
            clusterer.last_pk = max(clusterer.last_pk, max_pk_after)
        clusterer._tail = max_pk_after

    @property
    def count(self) -> int:
        return len(self._keys)

    def undo(self) -> None:
        clusterer = self._clusterer
        for key in self._keys:
            clusterer.index.discard(key)
        clusterer.last_pk, clusterer._tail, clusterer._newest = self._saved
