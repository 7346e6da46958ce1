"""The window of recent items, each with its story, and the search for a new item's story.

A new item is compared only with candidates, found three ways at once:

- items with the same ``url_key`` (exact duplicates, a dict lookup);
- items with the same normalized title (reposts that cut so much text that their shingle sets
  no longer overlap much, but kept the headline);
- items sharing at least one LSH band of the MinHash signature (``bands``), most shared bands
  first, at most ``max_candidates`` of them.

Each candidate inside the time window is then judged on the stored sketches, so the answer
never rests on the LSH estimate alone: ``similarity.merge_verdict`` settles most candidates
from their link keys, titles, sizes and shared sketch hashes, and gives the rest to
``compare``. The best verdict wins: highest score, then the nearer in time.

Memory per item is its sketch (up to ``4 * sketch_size`` bytes), facts, title and link key,
plus 12 bytes per LSH band (and under half a byte more in large segments, for their
directories); ``bench/dedup.py`` measures it for 100,000 items. Nothing here reads the clock:
times are passed in, and ``evict_before`` is the caller's to call. ``discard`` undoes an
``add`` (when the transaction that stored its story failed).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from feedhub.core.bands import BandStore
from feedhub.core.similarity import DedupeSettings, Fingerprint, Reason, merge_verdict
from feedhub.core.sketch import band_sums

__all__ = ["Match", "StoryIndex"]

U64 = npt.NDArray[np.uint64]

_TITLE_MIN = 4  # characters; shorter normalized titles ("快讯", "photos") find no candidates
_TITLE_FANOUT = 32  # most recent items kept per title or link key


@dataclass(frozen=True, slots=True)
class Match:
    """The story a new item joins, and why."""

    story_id: str
    key: str  # the indexed item it matched best
    reason: Reason
    score: float
    title_similarity: float
    text_similarity: float


class _Entry:
    __slots__ = ("key", "story_id", "fp", "ts")

    def __init__(self, key: str, story_id: str, fp: Fingerprint, ts: float) -> None:
        self.key = key
        self.story_id = story_id
        self.fp = fp
        self.ts = ts


class StoryIndex:
    """Recent items by story, searchable for near-duplicates. Not thread-safe."""

    def __init__(self, settings: DedupeSettings) -> None:
        self._settings = settings
        self._scheme = settings.scheme  # a property that formats a string: read once
        self._entries: dict[int, _Entry] = {}
        self._by_key: dict[str, int] = {}
        self._by_url: dict[str, list[int]] = {}
        self._by_title: dict[str, list[int]] = {}
        self._bands = BandStore()
        self._expiry: list[tuple[float, int]] = []
        self._next_slot = 0
        # The band keys of the fingerprint last matched, for the ``add`` that follows.
        self._last_keys: tuple[Fingerprint | None, U64, list[int]] = (None, _NO_KEYS, [])

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def add(self, key: str, story_id: str, fp: Fingerprint, published: datetime) -> None:
        """Index item ``key`` as a member of ``story_id``; re-adding a key replaces it."""
        self._check(fp)
        self._insert(key, story_id, fp, published.timestamp())
        if fp.size:
            keys, key_list = self._band_keys(fp)
            if key_list:
                self._bands.add(self._next_slot - 1, keys, key_list)

    def add_many(self, entries: Iterable[tuple[str, str, Fingerprint, datetime]]) -> int:
        """``add`` for many items at once, as when rebuilding the index from stored
        fingerprints at start-up: the LSH bands are computed and sorted in bulk."""
        slots: list[int] = []
        signatures: list[bytes] = []
        for key, story_id, fp, published in entries:
            self._check(fp)
            self._insert(key, story_id, fp, published.timestamp())
            if fp.size:
                slots.append(self._next_slot - 1)
                signatures.append(fp.signature)
        if slots:
            matrix = np.frombuffer(b"".join(signatures), dtype="<u2")
            matrix = matrix.reshape(len(slots), self._settings.num_perm)
            keys = band_sums(matrix, self._settings.lsh_rows)
            self._bands.add_many(np.asarray(slots, dtype=np.uint32), keys)
        return len(slots)

    def match(
        self, fp: Fingerprint, published: datetime, *, exclude_source: str | None = None
    ) -> Match | None:
        """The best story for a new item published at ``published``, or None.

        Only items published within ``window_seconds`` of it (before or after) are compared;
        ``exclude_source`` leaves out every item of that source (same-source items are
        otherwise compared under the stricter same-source rule)."""
        self._check(fp)
        settings = self._settings
        ts = published.timestamp()
        candidates: dict[int, None] = {}
        if fp.url_key:
            candidates.update(dict.fromkeys(self._by_url.get(fp.url_key, ())))
        if len(fp.title) >= _TITLE_MIN:
            candidates.update(dict.fromkeys(self._by_title.get(fp.title, ())))
        if fp.size:
            hits = self._bands.query(*self._band_keys(fp))
            # ``hits.most_common(max_candidates)``, which sorts in Python beyond that many:
            # the same stable order (most shared bands, then the first met).
            ranked = sorted(hits.items(), key=itemgetter(1), reverse=True)
            for slot, _ in ranked[: settings.max_candidates]:
                candidates[slot] = None
        best: tuple[float, float, _Entry, Reason, float, float] | None = None
        for slot in candidates:
            entry = self._entries.get(slot)
            if entry is None or abs(entry.ts - ts) > settings.window_seconds:
                continue
            if exclude_source is not None and entry.fp.source_id == exclude_source:
                continue
            verdict = merge_verdict(fp, entry.fp, settings)
            if verdict is None or verdict.reason is None:
                continue
            rank = (verdict.score, -abs(entry.ts - ts))
            if best is None or rank > best[:2]:
                best = (
                    *rank, entry, verdict.reason, verdict.title_similarity,
                    verdict.text_similarity,
                )  # fmt: skip
        if best is None:
            return None
        score, _, entry, reason, titles, text = best
        return Match(entry.story_id, entry.key, reason, score, titles, text)

    def evict_before(self, t: datetime) -> int:
        """Forget items published before ``t``; returns how many."""
        limit = t.timestamp()
        removed = 0
        while self._expiry and self._expiry[0][0] < limit:
            ts, slot = heapq.heappop(self._expiry)
            entry = self._entries.get(slot)
            if entry is not None and entry.ts == ts:
                self._remove(slot)
                removed += 1
        return removed

    def discard(self, key: str) -> bool:
        """Forget item ``key`` if it is indexed, as if it had never been added (undoing an
        ``add`` whose transaction failed); returns whether it was. Its entry in the expiry
        heap stays until ``evict_before`` passes it, which skips it then."""
        slot = self._by_key.get(key)
        if slot is None:
            return False
        self._remove(slot)
        return True

    def story_of(self, key: str) -> str | None:
        slot = self._by_key.get(key)
        return None if slot is None else self._entries[slot].story_id

    def stats(self) -> dict[str, int]:
        """Sizes for operators and benchmarks."""
        return {
            "items": len(self._entries),
            "band_segments": self._bands.segment_count(),
            "band_bytes": self._bands.nbytes(),
            "sketch_bytes": sum(len(e.fp.sketch) + len(e.fp.facts) for e in self._entries.values()),
        }

    # --- internals --------------------------------------------------------------------------

    def _check(self, fp: Fingerprint) -> None:
        if fp.scheme != self._scheme:
            raise ValueError(
                f"fingerprint made as {fp.scheme}, index expects {self._settings.scheme}: "
                "recompute it"
            )

    def _band_keys(self, fp: Fingerprint) -> tuple[U64, list[int]]:
        """The band keys of a fingerprint with text, as an array and as a list."""
        last_fp, last_keys, last_list = self._last_keys
        if last_fp is fp:
            return last_keys, last_list
        signature = np.frombuffer(fp.signature, dtype="<u2")
        keys = band_sums(signature, self._settings.lsh_rows)
        key_list: list[int] = keys.tolist()
        self._last_keys = (fp, keys, key_list)
        return keys, key_list

    def _insert(self, key: str, story_id: str, fp: Fingerprint, ts: float) -> None:
        old = self._by_key.get(key)
        if old is not None:
            self._remove(old)
        slot = self._next_slot
        self._next_slot += 1
        # The signature is only needed for the LSH keys, already computed: not kept.
        kept = fp if not fp.signature else _without_signature(fp)
        self._entries[slot] = _Entry(key, story_id, kept, ts)
        self._by_key[key] = slot
        if fp.url_key:
            _push(self._by_url, fp.url_key, slot)
        if len(fp.title) >= _TITLE_MIN:
            _push(self._by_title, fp.title, slot)
        heapq.heappush(self._expiry, (ts, slot))

    def _remove(self, slot: int) -> None:
        entry = self._entries.pop(slot)
        if self._by_key.get(entry.key) == slot:
            del self._by_key[entry.key]
        if entry.fp.url_key:
            _pull(self._by_url, entry.fp.url_key, slot)
        if len(entry.fp.title) >= _TITLE_MIN:
            _pull(self._by_title, entry.fp.title, slot)
        self._bands.remove(slot)


_NO_KEYS: U64 = np.zeros(0, dtype=np.uint64)


def _without_signature(fp: Fingerprint) -> Fingerprint:
    """``dataclasses.replace(fp, signature=b"")`` at a fraction of its cost."""
    return Fingerprint(
        fp.scheme, fp.source_id, fp.url_key, fp.title, fp.size, fp.sketch, b"", fp.facts,
        fp.fact_count, fp.lead,
    )  # fmt: skip


def _push(table: dict[str, list[int]], key: str, slot: int) -> None:
    slots = table.setdefault(key, [])
    slots.append(slot)
    if len(slots) > _TITLE_FANOUT:
        del slots[0]


def _pull(table: dict[str, list[int]], key: str, slot: int) -> None:
    slots = table.get(key)
    if slots is None:
        return
    if slot in slots:
        slots.remove(slot)
    if not slots:
        del table[key]
