"""Related reading: for each story, a few other recent stories about the same thing.

Why this shape: a story's related list must be ready when the story is published and must stay
good as newer stories arrive, without rescanning the window. So the window is an inverted index
of TF-IDF vectors (rjieba words of title and text, plus Chinese character bigrams at half a
word's weight; the title counted ``title_weight`` times; sublinear tf; L2-normalized), and a new
story costs one sparse dot product against the postings of its own terms: ``np.bincount`` over
their concatenation. Terms carried by more than ``max_df`` of the window are skipped in that
product (they cost the most and weigh the least).

A candidate's score is its cosine similarity, times ``2 ** -(age / half_life)`` (age of the
candidate at ``now``), times ``1 + same_section_boost * confidence`` when both stories are in
the same section (``confidence``: the categorizer's, of the candidate's section; 1 for channel
items). Titles share few words, so on their own they relate stories of the wrong section half
of the time; the section, which every story has, is the strongest evidence there is
(bench/RELATED.md). Because the age factor is common to all candidates at a given ``now``, a
story's ranking does not change as time passes, so a list computed once stays right until a
new story beats its weakest entry or an entry leaves the window. Each story's list is kept here
(story ids and similarities) so that ``add`` can tell at once which older lists the new story
enters: those not yet full, or where it beats the entry it displaces by ``refresh_margin``.
No more than ``max_per_source`` entries share one primary source (the first of ``source_ids``).

Each vector is weighted with the idf of the moment it was added (``add_many`` counts the whole
batch first), so a similarity, once computed, never changes; idf drifts slowly in a 30-day
window. Postings are packed into flat arrays now and then; removed and evicted stories leave
dead postings until then. Nothing here reads the clock or touches storage.
"""

from __future__ import annotations

import math
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt
import rjieba

__all__ = ["Changes", "Related", "RelatedDoc", "RelatedIndex", "RelatedParams", "terms"]

Floats = npt.NDArray[np.float64]
_DAY = 86_400.0
_WORDISH = re.compile(r"[^\W\d_]")  # a letter of any script: drops numbers and punctuation
_HAN = re.compile(r"[\u3400-\u9fff]{2,}")
_STOP = frozenset(
    "的 了 在 是 和 与 及 等 将 被 对 为 也 就 都 而 或 这 那 之 其 中 上 下 个 有 又 从 到"
    " 把 让 给 向 于 以 由 着 过 呢 吗 吧 啊 并 还 已 再 但 不 没 很 最 更 图 组图 视频"
    " a an the of to in on for and or is are was were be by with at from as that this it its"
    " s".split()
)
_MIN_DF_CAP = 500  # a term is never skipped for its df in a window this small
_MIN_REBUILD = 4096  # dead slots tolerated before the slots are renumbered
_MIN_TAIL = 50_000  # postings added since the last packing before packing again,
_TAIL_SHARE = 8  # ... and more than 1/8 of all postings


@dataclass(frozen=True, slots=True)
class RelatedDoc:
    """A story as related reading sees it. ``source_ids``: the sources carrying it, primary
    first. ``exclude``: story ids never to be related to this one (either way)."""

    story_id: str
    title: str
    text: str
    published: datetime
    source_ids: tuple[str, ...]
    section: str | None = None
    section_confidence: float = 1.0
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RelatedParams:
    limit: int = 5  # stories in a list
    window_days: float = 30.0  # candidates published within this of ``now``
    title_weight: float = 2.0  # a title word counts as this many body words
    half_life_days: float = 14.0  # a candidate this old weighs half as much as a new one
    max_per_source: int = 2  # entries sharing one primary source (0: no cap)
    same_section_boost: float = 10.0  # score factor 1 + this x confidence when sections agree
    refresh_margin: float = 0.25  # a new story enters a full older list when it beats the
    #                               weakest entry's score by this fraction
    refresh_candidates: int = 64  # older stories considered for a refresh per new story
    max_df: float = 0.05  # query terms in more than this share of the window are skipped
    max_doc_terms: int = 64  # strongest terms kept per story
    max_text_chars: int = 2000  # body text beyond this is ignored
    confidence_power: float = 1.0  # the candidate's section confidence, raised to this
    bigrams: float = 0.5  # weight of Chinese character bigrams against words (0: none)


@dataclass(frozen=True, slots=True)
class Related:
    story_id: str
    score: float  # at the ``now`` of the call that returned it
    similarity: float  # cosine of the two stories' vectors


@dataclass(frozen=True, slots=True)
class Changes:
    """What an operation did: the lists to store (``lists``, by story id, including the new
    story's own after ``add``) and the stories that left the index."""

    lists: Mapping[str, tuple[Related, ...]]
    removed: tuple[str, ...] = ()


def terms(
    title: str, text: str, title_weight: float, max_text_chars: int, bigrams: float = 0.0
) -> dict[str, float]:
    """Weighted term counts: NFKC, casefolded, rjieba words, no numbers, punctuation or stop
    words; with ``bigrams`` > 0, also Chinese character bigrams (``~`` prefixed) at that
    weight, which catch names and new words the segmenter splits."""
    counts: dict[str, float] = {}
    for part, weight in ((title, title_weight), (text[:max_text_chars], 1.0)):
        if not part:
            continue
        norm = unicodedata.normalize("NFKC", part).casefold()
        for word in rjieba.cut(norm):
            word = word.strip()
            if word and word not in _STOP and _WORDISH.search(word):
                counts[word] = counts.get(word, 0.0) + weight
        if bigrams > 0:
            for run in _HAN.findall(norm):
                for i in range(len(run) - 1):
                    gram = "~" + run[i : i + 2]
                    counts[gram] = counts.get(gram, 0.0) + weight * bigrams
    return counts


class _Postings:
    """(slot, weight) per term id: a packed part (CSR: three flat arrays, 8 bytes a posting)
    and a tail of per-term arrays for postings added since it was packed. Packing everything
    now and then keeps the memory of hundreds of thousands of small arrays away."""

    def __init__(self) -> None:
        self.indptr = np.zeros(1, dtype=np.int64)
        self.slots = np.zeros(0, dtype=np.int32)
        self.wts = np.zeros(0, dtype=np.float32)
        self.tail: dict[int, tuple[array[int], array[float]]] = {}
        self.tail_size = 0

    @property
    def size(self) -> int:
        return len(self.slots) + self.tail_size

    def add(self, slot: int, tids: array[int], wts: array[float]) -> None:
        for tid, w in zip(tids, wts, strict=True):
            entry = self.tail.get(tid)
            if entry is None:
                entry = self.tail[tid] = (array("i"), array("f"))
            entry[0].append(slot)
            entry[1].append(w)
        self.tail_size += len(tids)

    def get(self, tid: int) -> list[tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]]:
        out = []
        if tid + 1 < len(self.indptr):
            a, b = int(self.indptr[tid]), int(self.indptr[tid + 1])
            if b > a:
                out.append((self.slots[a:b], self.wts[a:b]))
        entry = self.tail.get(tid)
        if entry is not None:
            out.append(
                (np.frombuffer(entry[0], dtype=np.int32), np.frombuffer(entry[1], dtype=np.float32))
            )
        return out

    def pack(self, n_terms: int, live: list[_Story]) -> None:
        """Rebuild from the live stories (in slot order): dead slots' postings go too."""
        if live:
            tids = np.concatenate([np.frombuffer(s.tids, dtype=np.int32) for s in live])
            wts = np.concatenate([np.frombuffer(s.wts, dtype=np.float32) for s in live])
            lengths = np.fromiter((len(s.tids) for s in live), dtype=np.int64, count=len(live))
            slots = np.repeat(np.fromiter((s.slot for s in live), np.int32, len(live)), lengths)
        else:
            tids = slots = np.zeros(0, dtype=np.int32)
            wts = np.zeros(0, dtype=np.float32)
        order = np.argsort(tids, kind="stable")
        self.slots = slots[order]
        self.wts = wts[order]
        self.indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(tids, minlength=n_terms), out=self.indptr[1:])
        self.tail = {}
        self.tail_size = 0


def _discard(table: dict[str, list[str]], key: str, value: str) -> None:
    held = table.get(key)
    if held is not None and value in held:
        held.remove(value)
        if not held:
            del table[key]


class _Story:
    __slots__ = ("doc", "slot", "tids", "wts", "lst")

    def __init__(self, doc: RelatedDoc, slot: int, tids: array[int], wts: array[float]) -> None:
        self.doc = doc
        self.slot = slot
        self.tids = tids  # term ids of the stored vector
        self.wts = wts  # their weights (unit vector)
        self.lst: list[tuple[str, float]] | None = None  # (story id, similarity), best first


class RelatedIndex:
    """The window of stories with their related lists. Not thread-safe."""

    def __init__(self, params: RelatedParams | None = None) -> None:
        self.params = params or RelatedParams()
        self._stories: dict[str, _Story] = {}
        self._holders: dict[str, list[str]] = {}  # story id -> stories whose list holds it
        self._term_ids: dict[int, int] = {}  # hash(term) -> term id
        self._df: list[int] = []
        self._postings = _Postings()
        self._codes: dict[str | None, int] = {None: -1}
        self._n = 0  # slots used
        self._dead = 0
        cap = 1024
        self._ids: list[str | None] = []
        self._pub = np.zeros(cap)
        self._alive = np.zeros(cap, dtype=bool)
        self._section = np.full(cap, -1, dtype=np.int32)
        self._sure = np.ones(cap)  # the categorizer's confidence in each story's section
        self._floor = np.full(cap, np.inf)  # weakest entry's key; -inf: list not full
        self._source = np.full(cap, -1, dtype=np.int32)

    def __len__(self) -> int:
        return len(self._stories)

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._stories

    # --- changes ------------------------------------------------------------------------------

    def add(self, doc: RelatedDoc, now: datetime) -> Changes:
        """Index a new or changed story; its list and the older lists it entered.

        A changed story (same id) replaces the old version; lists holding it keep it with the
        new similarity."""
        old = self._stories.get(doc.story_id)
        if old is not None:
            self._unindex(old)
        story = self._index(doc, self._vector(doc))
        changed: dict[str, tuple[Related, ...]] = {}
        if old is not None:
            for holder in sorted(self._holders.get(doc.story_id, ())):
                h = self._stories[holder]
                if h.lst is not None:
                    sim = self._dot(h, story)
                    self._store(h, [(r, sim if r == doc.story_id else s) for r, s in h.lst])
                    changed[holder] = self._present(h, now)
        sims = self._scores(story)
        story_list = self._select(story, sims, now)
        self._store(story, story_list)
        changed.update(self._refresh(story, sims, now))
        changed[doc.story_id] = self._present(story, now)
        return Changes(changed)

    def add_many(self, docs: Iterable[RelatedDoc]) -> int:
        """Index stories without computing lists, as when loading the window at start-up: the
        idf counts the whole batch first. Lists come from :meth:`restore` or are computed by
        :meth:`related` when first asked for."""
        batch = list({d.story_id: d for d in docs}.values())
        for doc in batch:
            if doc.story_id in self._stories:
                self.remove(doc.story_id)
        counts = [self._terms(d) for d in batch]
        df = Counter(t for c in counts for t in c)
        for term, n in df.items():
            self._df[self._tid(term)] += n
        n = len(self._stories) + len(batch)
        for doc, c in zip(batch, counts, strict=True):
            self._index(doc, self._weigh(c, n))
        self._postings.pack(len(self._df), sorted(self._stories.values(), key=lambda s: s.slot))
        return len(batch)

    def restore(self, story_id: str, related_ids: Iterable[str]) -> None:
        """Set a story's list from storage (ids in order); ids not in the index are dropped."""
        story = self._stories[story_id]
        self._store(
            story,
            [
                (rid, self._dot(story, self._stories[rid]))
                for rid in related_ids
                if rid in self._stories and rid != story_id
            ],
        )

    def remove(self, story_id: str, now: datetime | None = None) -> Changes:
        """Drop a story (merged into another, deleted). With ``now``, lists that held it are
        recomputed and returned; without, they just lose the entry."""
        story = self._stories.get(story_id)
        if story is None:
            return Changes({})
        return self._drop([story], now)

    def evict(self, now: datetime) -> Changes:
        """Drop stories published before the window; lists that held them are recomputed."""
        cutoff = now.timestamp() - self.params.window_days * _DAY
        slots = np.flatnonzero(self._alive[: self._n] & (self._pub[: self._n] < cutoff))
        old = [self._stories[sid] for sid in (self._ids[s] for s in slots.tolist()) if sid]
        return self._drop(old, now)

    # --- queries ------------------------------------------------------------------------------

    def related(self, story: str | RelatedDoc, now: datetime) -> tuple[Related, ...]:
        """The related list of an indexed story (computed and kept if it had none), or of a
        document that is not indexed (computed, nothing kept)."""
        if isinstance(story, str):
            s = self._stories[story]
            if s.lst is None:
                self._store(s, self._select(s, self._scores(s), now))
            return self._present(s, now)
        probe = _Story(story, -1, *self._vector(story, probe=True))
        probe.lst = self._select(probe, self._scores(probe), now)
        return self._present(probe, now)

    def stats(self) -> dict[str, int]:
        return {
            "stories": len(self._stories),
            "slots": self._n,
            "dead_slots": self._dead,
            "terms": len(self._term_ids),
            "postings": self._postings.size,
            "lists": sum(1 for s in self._stories.values() if s.lst is not None),
        }

    # --- vectors and postings -----------------------------------------------------------------

    def _terms(self, doc: RelatedDoc) -> dict[str, float]:
        p = self.params
        return terms(doc.title, doc.text, p.title_weight, p.max_text_chars, p.bigrams)

    def _tid(self, term: str) -> int:
        key = hash(term)
        tid = self._term_ids.get(key)
        if tid is None:
            tid = self._term_ids[key] = len(self._df)
            self._df.append(0)
        return tid

    def _vector(self, doc: RelatedDoc, probe: bool = False) -> tuple[array[int], array[float]]:
        """The unit vector of a story being indexed (its terms' df counted now), or of a probe
        (nothing counted; terms the index has never seen get id -1)."""
        counts = self._terms(doc)
        if not probe:
            for term in counts:
                self._df[self._tid(term)] += 1
            return self._weigh(counts, len(self._stories) + 1)
        return self._weigh(counts, len(self._stories) + 1, extra=1)

    def _weigh(
        self, counts: dict[str, float], n: int, extra: int = 0
    ) -> tuple[array[int], array[float]]:
        """Sublinear tf times smoothed idf, the strongest ``max_doc_terms``, L2-normalized."""
        get = self._term_ids.get
        df = self._df
        rows = []
        for term, c in counts.items():
            tid = get(hash(term), -1)
            idf = math.log((1 + n) / (1 + extra + (df[tid] if tid >= 0 else 0))) + 1.0
            rows.append((-(1.0 + math.log(max(c, 1.0))) * idf, term, tid))
        rows.sort()
        rows = rows[: self.params.max_doc_terms]
        norm = math.sqrt(sum(w * w for w, _, _ in rows)) or 1.0
        return array("i", [t for _, _, t in rows]), array("f", [-w / norm for w, _, _ in rows])

    def _index(self, doc: RelatedDoc, vec: tuple[array[int], array[float]]) -> _Story:
        """Give ``doc`` a slot and postings; its terms' df are already counted."""
        if self._n == len(self._pub):
            self._grow()
        slot = self._n
        self._n += 1
        story = _Story(replace(doc, title="", text=""), slot, *vec)  # the text is not kept
        self._stories[doc.story_id] = story
        self._ids.append(doc.story_id)
        self._pub[slot] = doc.published.timestamp()
        self._alive[slot] = True
        self._section[slot] = self._code(doc.section)
        self._sure[slot] = doc.section_confidence
        self._floor[slot] = np.inf
        self._source[slot] = self._code(doc.source_ids[0] if doc.source_ids else None)
        self._postings.add(slot, story.tids, story.wts)
        if self._postings.tail_size > max(_MIN_TAIL, self._postings.size // _TAIL_SHARE):
            self._postings.pack(len(self._df), sorted(self._stories.values(), key=lambda s: s.slot))
        return story

    def _unindex(self, story: _Story) -> None:
        del self._stories[story.doc.story_id]
        self._alive[story.slot] = False
        self._ids[story.slot] = None
        self._dead += 1
        for tid in story.tids:
            self._df[tid] -= 1
        for rid, _ in story.lst or ():
            _discard(self._holders, rid, story.doc.story_id)
        if self._dead > max(_MIN_REBUILD, len(self._stories)):
            self._rebuild()

    def _code(self, value: str | None) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self._codes) - 1
        return code

    def _grow(self) -> None:
        cap = 2 * len(self._pub)
        self._pub = np.resize(self._pub, cap)
        self._alive = np.concatenate([self._alive, np.zeros(cap - len(self._alive), bool)])
        self._section = np.resize(self._section, cap)
        self._sure = np.resize(self._sure, cap)
        self._floor = np.resize(self._floor, cap)
        self._source = np.resize(self._source, cap)

    def _rebuild(self) -> None:
        """Renumber live stories in slot order and rebuild the postings without dead ones."""
        live = sorted(self._stories.values(), key=lambda s: s.slot)
        keep = np.array([s.slot for s in live], dtype=np.int64)
        n = len(live)
        self._pub[:n] = self._pub[keep]
        self._section[:n] = self._section[keep]
        self._sure[:n] = self._sure[keep]
        self._floor[:n] = self._floor[keep]
        self._source[:n] = self._source[keep]
        self._alive[:] = False
        self._alive[:n] = True
        self._ids = [s.doc.story_id for s in live]
        for slot, s in enumerate(live):
            s.slot = slot
        self._postings.pack(len(self._df), live)
        self._n = n
        self._dead = 0

    def _dot(self, a: _Story, b: _Story) -> float:
        wb = dict(zip(b.tids, b.wts, strict=True))
        return float(sum(w * wb.get(t, 0.0) for t, w in zip(a.tids, a.wts, strict=True)))

    def _scores(self, story: _Story) -> Floats:
        """Similarity of ``story`` to every slot (zeros where nothing is shared)."""
        return self._products(story.tids, story.wts)

    def _products(self, tids: Iterable[int], wts: Iterable[float]) -> Floats:
        cap = max(_MIN_DF_CAP, self.params.max_df * len(self._stories))
        slots: list[npt.NDArray[np.int32]] = []
        vals: list[npt.NDArray[np.float32]] = []
        for tid, w in zip(tids, wts, strict=True):
            if tid < 0 or self._df[tid] > cap:
                continue
            for ps, pw in self._postings.get(tid):
                slots.append(ps)
                vals.append(pw * np.float32(w))
        if not slots:
            return np.zeros(self._n)
        sims = np.bincount(np.concatenate(slots), np.concatenate(vals), minlength=self._n)
        return sims.astype(np.float64, copy=False)

    # --- lists ----------------------------------------------------------------------------------

    def _factors(self, story: _Story, slots: npt.NDArray[np.intp], now: float) -> Floats:
        """Age and section factors of candidate ``slots`` as seen from ``story``."""
        age = np.maximum(now - self._pub[slots], 0.0) / (self.params.half_life_days * _DAY)
        return np.exp2(-age) * self._boost(story, slots)

    def _boost(self, story: _Story, slots: npt.NDArray[np.intp]) -> Floats:
        boost = self.params.same_section_boost
        code = self._codes.get(story.doc.section, -1)
        if code < 0 or not boost:
            return np.ones(len(slots))
        sure = self._sure[slots] ** self.params.confidence_power
        return np.where(self._section[slots] == code, 1.0 + boost * sure, 1.0)

    def _select(self, story: _Story, sims: Floats, now: datetime) -> list[tuple[str, float]]:
        p = self.params
        t = now.timestamp()
        cand = np.flatnonzero(sims > 0)
        if story.slot >= 0:
            cand = cand[cand != story.slot]
        cand = cand[self._alive[cand] & (self._pub[cand] >= t - p.window_days * _DAY)]
        score = sims[cand] * self._factors(story, cand, t)
        excluded = story.doc.exclude
        k = p.limit * 4
        while True:  # widen until the source cap and exclusions leave enough (bounded by size)
            if len(cand) > k:
                kth = np.partition(score, len(score) - k)[len(score) - k]
                top = np.flatnonzero(score >= kth)
            else:
                top = np.arange(len(cand))
            ranked = sorted(
                (-float(score[i]), str(self._ids[int(cand[i])]), int(cand[i])) for i in top
            )
            out: list[tuple[str, float]] = []
            per_source: Counter[int] = Counter()
            for _, sid, slot in ranked:
                other = self._stories[sid]
                if (
                    sid == story.doc.story_id
                    or sid in excluded
                    or story.doc.story_id in other.doc.exclude
                ):
                    continue
                src = int(self._source[slot])
                if p.max_per_source and src >= 0 and per_source[src] >= p.max_per_source:
                    continue
                per_source[src] += 1
                out.append((sid, float(sims[slot])))
                if len(out) == p.limit:
                    return out
            if len(top) >= len(cand):
                return out
            k *= 4

    def _refresh(self, new: _Story, sims: Floats, now: datetime) -> dict[str, tuple[Related, ...]]:
        """Older lists the new story enters: not full yet, or beaten by ``refresh_margin``."""
        p = self.params
        t = now.timestamp()
        cand = np.flatnonzero(sims > 0)
        cand = cand[(cand != new.slot) & self._alive[cand]]
        order = np.argsort(-(sims[cand] * self._boost(new, cand)), kind="stable")
        cand = cand[order[: p.refresh_candidates]]
        # necessary condition, vectorized: the new story's key beats the weakest entry's
        boost = np.ones(len(cand))
        if new.doc.section is not None and p.same_section_boost:
            same = self._section[cand] == self._section[new.slot]
            boost[same] += p.same_section_boost * self._sure[new.slot] ** p.confidence_power
        key = np.log2(sims[cand] * boost) + self._pub[new.slot] / (p.half_life_days * _DAY)
        cand = cand[key > self._floor[cand] + math.log2(1.0 + p.refresh_margin)]
        changed: dict[str, tuple[Related, ...]] = {}
        for slot in cand.tolist():
            sid = self._ids[slot]
            assert sid is not None
            older = self._stories[sid]
            if older.lst is None or sid in new.doc.exclude or new.doc.story_id in older.doc.exclude:
                continue
            entries = older.lst + [(new.doc.story_id, float(sims[slot]))]
            scored = self._score_entries(older, entries, t)
            ranked = sorted(zip(scored, entries, strict=True), key=lambda x: (-x[0], x[1][0]))
            kept: list[tuple[str, float]] = []
            per_source: Counter[int] = Counter()
            for _, (rid, sim) in ranked:
                src = int(self._source[self._stories[rid].slot])
                if p.max_per_source and src >= 0 and per_source[src] >= p.max_per_source:
                    continue
                per_source[src] += 1
                kept.append((rid, sim))
            kept = kept[: p.limit]
            if all(rid != new.doc.story_id for rid, _ in kept):
                continue
            if len(older.lst) >= p.limit:
                dropped = [s for e, s in zip(entries, scored, strict=True) if e not in kept]
                if scored[-1] < (1.0 + p.refresh_margin) * max(dropped, default=0.0):
                    continue
            self._store(older, kept)
            changed[sid] = self._present(older, now)
        return changed

    def _score_entries(
        self, story: _Story, entries: list[tuple[str, float]], now: float
    ) -> list[float]:
        slots = np.array([self._stories[rid].slot for rid, _ in entries], dtype=np.intp)
        factors = self._factors(story, slots, now)
        return [sim * float(f) for (_, sim), f in zip(entries, factors, strict=True)]

    def _store(self, story: _Story, entries: list[tuple[str, float]]) -> None:
        sid = story.doc.story_id
        for rid, _ in story.lst or ():
            _discard(self._holders, rid, sid)
        story.lst = entries
        for rid, _ in entries:
            held = self._holders.setdefault(rid, [])
            if sid not in held:
                held.append(sid)
        if story.slot >= 0:
            self._floor[story.slot] = self._weakest(story, entries)

    def _weakest(self, story: _Story, entries: list[tuple[str, float]]) -> float:
        """The time-free key of the weakest entry: log2 of its score plus its published time in
        half-lives (scores at any ``now`` rank as these keys do)."""
        if len(entries) < self.params.limit:
            return -math.inf
        slots = np.array([self._stories[rid].slot for rid, _ in entries], dtype=np.intp)
        sims = np.array([sim for _, sim in entries])
        keys = np.log2(np.maximum(sims, 1e-12) * self._boost(story, slots))
        keys += self._pub[slots] / (self.params.half_life_days * _DAY)
        return float(keys.min())

    def _present(self, story: _Story, now: datetime) -> tuple[Related, ...]:
        entries = story.lst or []
        if not entries:
            return ()
        scores = self._score_entries(story, entries, now.timestamp())
        return tuple(
            Related(rid, round(sc, 6), round(sim, 6))
            for (rid, sim), sc in zip(entries, scores, strict=True)
        )

    def _drop(self, stories: list[_Story], now: datetime | None) -> Changes:
        gone = sorted(s.doc.story_id for s in stories)
        affected: set[str] = set()
        for s in stories:
            self._unindex(s)
        for sid in gone:
            affected.update(self._holders.pop(sid, ()))
        affected -= set(gone)
        lists: dict[str, tuple[Related, ...]] = {}
        for hid in sorted(affected):
            h = self._stories[hid]
            if now is None:
                self._store(h, [(r, s) for r, s in h.lst or () if r in self._stories])
            else:
                self._store(h, self._select(h, self._scores(h), now))
                lists[hid] = self._present(h, now)
        return Changes(lists, tuple(gone))
