"""The LSH table of the story index: band key -> items, in sorted numpy segments.

A dict of band keys costs about a hundred bytes per entry in Python objects, and an index of
100,000 items with 42 bands has 4.2 million entries. Here an entry costs 12 bytes: recent
additions wait in a small dict, and every ``buffer_items`` additions they are frozen into a
segment of two parallel arrays (64-bit keys sorted, 32-bit slots), looked up with
``np.searchsorted``. Adjacent segments are merged whenever the newer one has grown to half the
size of the older one, so there are only about log2(n / buffer_items) segments to search.
Removed slots are remembered per segment and dropped when the segment is next merged, or
rebuilt alone once half of it is gone.

Slots are small integers handed out in increasing order by the caller, so each segment holds
one contiguous range of slots and a removal finds its segment by bisection.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["BandStore"]

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]


@dataclass(slots=True)
class _Segment:
    keys: U64  # sorted
    slots: U32  # parallel to keys
    first: int  # smallest slot ever stored here
    last: int  # largest slot ever stored here
    items: int  # slots stored (alive or not)
    removed: set[int] = field(default_factory=set)

    @property
    def alive(self) -> int:
        return self.items - len(self.removed)


class BandStore:
    """Band keys of many items; ``query`` counts, per slot, how many keys it shares."""

    def __init__(self, buffer_items: int = 2048) -> None:
        self._buffer_items = buffer_items
        self._buffer: dict[int, list[int]] = {}  # band key -> slots
        self._buffer_slots: dict[int, U64] = {}  # slot -> its keys, for removal
        self._segments: list[_Segment] = []

    def __len__(self) -> int:
        return len(self._buffer_slots) + sum(s.alive for s in self._segments)

    def add(self, slot: int, keys: U64) -> None:
        """Store ``keys`` for ``slot``; slots must increase from one call to the next."""
        self._buffer_slots[slot] = keys
        for key in keys.tolist():
            self._buffer.setdefault(key, []).append(slot)
        if len(self._buffer_slots) >= self._buffer_items:
            self.flush()

    def add_many(self, slots: U32, keys: U64) -> None:
        """Store many items at once (``keys`` has one row per slot): the fast path for
        rebuilding an index, which skips the dict entirely."""
        self.flush()
        if slots.size == 0:
            return
        bands = keys.shape[1]
        self._push(
            keys.reshape(-1), np.repeat(slots.astype(np.uint32), bands), int(slots[0]),
            int(slots[-1]), int(slots.size),
        )  # fmt: skip

    def remove(self, slot: int) -> None:
        keys = self._buffer_slots.pop(slot, None)
        if keys is not None:
            for key in keys.tolist():
                holders = self._buffer[key]
                holders.remove(slot)
                if not holders:
                    del self._buffer[key]
            return
        index = bisect.bisect_right([s.first for s in self._segments], slot) - 1
        if index < 0 or not self._segments[index].first <= slot <= self._segments[index].last:
            return
        segment = self._segments[index]
        segment.removed.add(slot)
        if segment.alive == 0:
            del self._segments[index]
        elif len(segment.removed) * 2 > segment.items:
            self._segments[index] = _compact([segment])

    def query(self, keys: U64) -> Counter[int]:
        """Slots sharing at least one of ``keys``, with how many they share. Removed slots
        still in a segment are filtered out."""
        found: list[int] = []
        for key in keys.tolist():
            holders = self._buffer.get(key)
            if holders:
                found.extend(holders)
        hits: Counter[int] = Counter(found)
        for segment in self._segments:
            left = np.searchsorted(segment.keys, keys, side="left")
            right = np.searchsorted(segment.keys, keys, side="right")
            counts = right - left
            if not counts.any():
                continue
            # Most keys are held by one item: gather those at once, walk the rest.
            slots = segment.slots[left[counts == 1]].tolist()
            for i in np.flatnonzero(counts > 1).tolist():
                slots.extend(segment.slots[left[i] : right[i]].tolist())
            if segment.removed:
                slots = [slot for slot in slots if slot not in segment.removed]
            hits.update(slots)
        return hits

    def flush(self) -> None:
        """Freeze the buffer into a segment."""
        if not self._buffer_slots:
            return
        slots = list(self._buffer_slots)
        keys = np.concatenate([self._buffer_slots[s] for s in slots])
        owners = np.repeat(
            np.asarray(slots, dtype=np.uint32), [k.size for k in self._buffer_slots.values()]
        )
        self._buffer.clear()
        self._buffer_slots.clear()
        self._push(keys, owners, slots[0], slots[-1], len(slots))

    def nbytes(self) -> int:
        """Bytes held by the segments' arrays (the buffer's dict is not counted: it holds at
        most ``buffer_items`` items)."""
        return sum(s.keys.nbytes + s.slots.nbytes for s in self._segments)

    def segment_count(self) -> int:
        return len(self._segments)

    def _push(self, keys: U64, slots: U32, first: int, last: int, items: int) -> None:
        order = np.argsort(keys, kind="stable")
        self._segments.append(_Segment(keys[order], slots[order], first, last, items))
        while len(self._segments) >= 2 and self._segments[-2].alive <= 2 * self._segments[-1].alive:
            newer = self._segments.pop()
            older = self._segments.pop()
            self._segments.append(_compact([older, newer]))


def _compact(parts: list[_Segment]) -> _Segment:
    """One segment holding the live entries of ``parts`` (adjacent, oldest first)."""
    keys = np.concatenate([p.keys for p in parts])
    slots = np.concatenate([p.slots for p in parts])
    removed = set().union(*(p.removed for p in parts))
    if removed:
        keep = ~np.isin(slots, np.fromiter(removed, dtype=np.uint32, count=len(removed)))
        keys, slots = keys[keep], slots[keep]
    order = np.argsort(keys, kind="stable")
    items = sum(p.items for p in parts) - len(removed)
    return _Segment(keys[order], slots[order], parts[0].first, parts[-1].last, items)
