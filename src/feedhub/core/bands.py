"""The LSH table of the story index: band key -> items, in sorted numpy segments.

A dict of band keys costs about a hundred bytes per entry in Python objects, and an index of
100,000 items with 42 bands has 4.2 million entries. Here an entry costs 12 bytes: recent
additions wait in a small dict, and every ``buffer_items`` additions they are frozen into a
segment of two parallel arrays (64-bit keys sorted, 32-bit slots). Adjacent segments are merged
(as sorted runs, not sorted again) whenever the newer one has grown to half the size of the
older one, so there are only about log2(n / buffer_items) segments to search. Removed slots are
remembered per segment and dropped when the segment is next merged, or rebuilt alone once half
of it is gone.

Slots are small integers handed out in increasing order by the caller, so each segment holds
one contiguous range of slots and a removal finds its segment by bisection.

``query`` runs for every new item, and nearly all of its keys are held nowhere. In a segment of
megabytes, a binary search (``np.searchsorted``) misses the cache at nearly every step, and
those misses were most of the cost of a query. So a large segment also has a directory: where
each range of leading key bits begins among its keys (4 bytes per 8 to 16 entries, under half
a byte per entry). One read there and one short contiguous read of the keys find a key, the
reads of all the keys of a query are made by a handful of numpy calls, and only keys in ranges
too crowded to read whole (keys that very many items share) are searched for. Small segments
stay in the cache and are searched. The buffer keeps each key's first holder in a plain
``key -> slot`` dict, which one ``dict.update`` fills for a new item; only keys already held by
a buffered item need a list.

The order in which ``query`` first meets each slot is part of its answer (the story index keeps
the first of equally good candidates): the buffer, then each segment from the oldest, and in a
segment the keys held once before the keys held more than once, each group in key order.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat

import numpy as np
import numpy.typing as npt

__all__ = ["BandStore"]

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
Positions = npt.NDArray[np.intp]

_DIRECTORY_MIN = 1 << 17  # entries (a megabyte of keys): smaller segments are searched
_PER_RANGE = 16  # entries per directory range: 8 to 16 on average
_READ = 32  # keys read from the start of a key's range: twice the most on average


@dataclass(frozen=True, slots=True)
class _Directory:
    """Where each range of leading key bits begins in a segment's sorted keys."""

    shift: np.uint64  # a key's range is key >> shift
    starts: U32  # where each range begins, and the end of the keys
    read: int  # keys read from the start of a key's range
    wide: frozenset[int]  # ranges of more entries than that: searched instead


def _directory(keys: U64) -> _Directory | None:
    """The directory of sorted ``keys``, if they are many."""
    if not _DIRECTORY_MIN <= keys.size < 2**32:
        return None
    bits = max(1, (keys.size // _PER_RANGE).bit_length())
    shift = np.uint64(64 - bits)
    counts = np.bincount((keys >> shift).astype(np.intp), minlength=1 << bits)
    starts = np.zeros(counts.size + 1, dtype=np.uint32)
    np.cumsum(counts, out=starts[1:], dtype=np.uint32)
    wide = frozenset(np.flatnonzero(counts > _READ).tolist())
    return _Directory(shift, starts, _READ, wide)


@dataclass(slots=True)
class _Segment:
    keys: U64  # sorted
    slots: U32  # parallel to keys
    first: int  # smallest slot ever stored here
    last: int  # largest slot ever stored here
    items: int  # slots stored (alive or not)
    directory: _Directory | None = field(init=False)
    removed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.directory = _directory(self.keys)

    @property
    def alive(self) -> int:
        return self.items - len(self.removed)


class BandStore:
    """Band keys of many items; ``query`` counts, per slot, how many keys it shares."""

    def __init__(self, buffer_items: int = 2048) -> None:
        self._buffer_items = buffer_items
        self._first: dict[int, int] = {}  # band key -> its earliest holder in the buffer
        self._more: dict[int, list[int]] = {}  # band key -> its later holders, in order
        self._buffer_slots: dict[int, U64] = {}  # slot -> its keys, for flush and removal
        self._segments: list[_Segment] = []

    def __len__(self) -> int:
        return len(self._buffer_slots) + sum(s.alive for s in self._segments)

    def add(self, slot: int, keys: U64, key_list: list[int] | None = None) -> None:
        """Store ``keys`` for ``slot``; slots must increase from one call to the next.
        ``key_list`` is ``keys.tolist()`` when the caller has it already."""
        if key_list is None:
            key_list = keys.tolist()
        self._buffer_slots[slot] = keys
        first = self._first
        if first.keys().isdisjoint(key_list):
            before = len(first)
            first.update(zip(key_list, repeat(slot)))
            if len(first) - before != len(key_list):  # a key twice in one item: held twice
                for key, times in Counter(key_list).items():
                    if times > 1:
                        self._more[key] = [slot] * (times - 1)
        else:
            more = self._more
            for key in key_list:
                if key in first:
                    more.setdefault(key, []).append(slot)
                else:
                    first[key] = slot
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
            first, more = self._first, self._more
            for key in keys.tolist():
                later = more.get(key)
                if later is None:  # ``slot`` was its only holder
                    del first[key]
                    continue
                if first[key] == slot:
                    first[key] = later.pop(0)
                else:
                    later.remove(slot)
                if not later:
                    del more[key]
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

    def query(self, keys: U64, key_list: list[int] | None = None) -> Counter[int]:
        """Slots sharing at least one of ``keys``, with how many they share, in the order met
        (see the module's docstring). Removed slots still in a segment are filtered out.
        ``key_list`` is ``keys.tolist()`` when the caller has it already."""
        keys = np.asarray(keys, dtype=np.uint64)
        if key_list is None:
            key_list = keys.tolist()
        found: list[int] = []
        first, more = self._first, self._more
        if first:
            # One C-level pass finds the few keys held in the buffer; only those are walked.
            holders = zip(key_list, map(first.get, key_list), strict=True)
            for key, holder in [(k, h) for k, h in holders if h is not None]:
                found.append(holder)
                later = more.get(key)
                if later:
                    found.extend(later)
        hits: Counter[int] = Counter(found)
        for segment in self._segments:
            if not segment.keys.size:
                continue
            slots = _holders(segment, _runs(segment, keys))
            if segment.removed:
                slots = [slot for slot in slots if slot not in segment.removed]
            hits.update(slots)
        return hits

    def flush(self) -> None:
        """Freeze the buffer into a segment."""
        if not self._buffer_slots:
            return
        slots = list(self._buffer_slots)
        keys = np.concatenate(list(self._buffer_slots.values()))
        owners = np.repeat(
            np.asarray(slots, dtype=np.uint32), [k.size for k in self._buffer_slots.values()]
        )
        self._first.clear()
        self._more.clear()
        self._buffer_slots.clear()
        self._push(keys, owners, slots[0], slots[-1], len(slots))

    def nbytes(self) -> int:
        """Bytes held by the segments' arrays and directories (the buffer's dict is not
        counted: it holds at most ``buffer_items`` items)."""
        return sum(
            s.keys.nbytes + s.slots.nbytes + (s.directory.starts.nbytes if s.directory else 0)
            for s in self._segments
        )

    def segment_count(self) -> int:
        return len(self._segments)

    def _push(self, keys: U64, slots: U32, first: int, last: int, items: int) -> None:
        order = np.argsort(keys, kind="stable")
        self._segments.append(_Segment(keys[order], slots[order], first, last, items))
        while len(self._segments) >= 2 and self._segments[-2].alive <= 2 * self._segments[-1].alive:
            newer = self._segments.pop()
            older = self._segments.pop()
            self._segments.append(_compact([older, newer]))


def _runs(segment: _Segment, keys: U64) -> list[tuple[int, int]]:
    """Where the ``keys`` held in ``segment`` are, as ``(start, end)`` positions in its sorted
    keys, in key order."""
    if segment.directory is None:
        return [(start, end) for _, start, end in _search(segment.keys, keys)]
    directory, sorted_keys = segment.directory, segment.keys
    ranges = keys >> directory.shift
    firsts = directory.starts.take(ranges)
    # Each key's whole range, all keys at once. Reading on into the next ranges meets keys that
    # differ in their leading bits; reads past the end are clipped, and dropped below.
    width = directory.read
    positions = _read_offsets(keys.size, width) + firsts.repeat(width)
    found = (sorted_keys.take(positions, mode="clip") == keys.repeat(width)).nonzero()[0]
    runs: dict[int, tuple[int, int]] = {}
    if found.size:
        bases = firsts.tolist()
        end = sorted_keys.size
        for at in found.tolist():
            i, offset = divmod(at, width)
            position = bases[i] + offset
            if position < end:  # a key's run is contiguous: extend it
                runs[i] = (runs.get(i, (position, 0))[0], position + 1)
    range_list = ranges.tolist()
    if directory.wide.isdisjoint(range_list):
        return list(runs.values())
    crowded = [i for i, r in enumerate(range_list) if r in directory.wide]
    for i in crowded:
        runs.pop(i, None)  # maybe only the start of its run
    for j, start, end in _search(sorted_keys, keys[crowded]):
        runs[crowded[j]] = (start, end)
    return [runs[i] for i in sorted(runs)]


def _search(sorted_keys: U64, keys: U64) -> list[tuple[int, int, int]]:
    """Where the ``keys`` held in ``sorted_keys`` are, as ``(index in keys, start, end)``, in
    key order: a binary search of each key, then of the end of the run of each one found."""
    starts = sorted_keys.searchsorted(keys)
    found = (sorted_keys.take(starts, mode="clip") == keys).nonzero()[0]
    if not found.size:
        return []
    ends = sorted_keys.searchsorted(keys[found], side="right").tolist()
    return list(zip(found.tolist(), starts[found].tolist(), ends, strict=True))


@lru_cache(maxsize=8)
def _read_offsets(count: int, read: int) -> Positions:
    """0 .. read - 1, ``count`` times over."""
    offsets = np.tile(np.arange(read, dtype=np.intp), count)
    offsets.flags.writeable = False
    return offsets


def _holders(segment: _Segment, runs: list[tuple[int, int]]) -> list[int]:
    """The slots of ``runs`` of ``segment``: those of keys held once, then those of keys held
    more than once, each group in key order."""
    owners = segment.slots
    slots = [owners.item(start) for start, end in runs if end - start == 1]
    for start, end in runs:
        if end - start > 1:
            slots.extend(owners[start:end].tolist())
    return slots


def _compact(parts: list[_Segment]) -> _Segment:
    """One segment holding the live entries of ``parts`` (adjacent, oldest first), in the order
    a stable sort of them all would give, made by merging: they are sorted already."""
    removed = set().union(*(p.removed for p in parts))
    gone = np.fromiter(removed, dtype=np.uint32, count=len(removed))
    live = [(p.keys, p.slots) if not removed else _without(p, gone) for p in parts]
    keys, slots = live[0]
    for newer_keys, newer_slots in live[1:]:
        keys, slots = _merge(keys, slots, newer_keys, newer_slots)
    items = sum(p.items for p in parts) - len(removed)
    return _Segment(keys, slots, parts[0].first, parts[-1].last, items)


def _without(segment: _Segment, gone: U32) -> tuple[U64, U32]:
    """The keys and slots of ``segment`` but for the entries of slots ``gone``."""
    keep = ~np.isin(segment.slots, gone)
    return segment.keys[keep], segment.slots[keep]


def _merge(keys: U64, slots: U32, newer_keys: U64, newer_slots: U32) -> tuple[U64, U32]:
    """Two sorted runs of entries as one, the first run's entries before the second's among
    equal keys."""
    at = keys.searchsorted(newer_keys, side="right")
    at += np.arange(newer_keys.size)
    older = np.ones(keys.size + newer_keys.size, dtype=np.bool_)
    older[at] = False
    merged_keys = np.empty(older.size, dtype=keys.dtype)
    merged_slots = np.empty(older.size, dtype=slots.dtype)
    merged_keys[at] = newer_keys
    merged_keys[older] = keys
    merged_slots[at] = newer_slots
    merged_slots[older] = slots
    return merged_keys, merged_slots
