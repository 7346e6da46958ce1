"""Related reading and hot stories, in the worker and for the web side.

The worker keeps an in-memory index of the stories in the related-reading window
(``feedhub.core.related``), loaded from storage on first use. Stories whose list is due (new,
joined by another source, or filed under another section: ``related_at`` NULL) are the work
queue; each one added may also enter older stories' lists, and every list that changed is
written back. Lists live in the database, so web processes only read them.

Time: the index's "now" is the newest story it holds, capped at the real time. For a live
portal that is now; for an archive being read in (or the offline demo, whose feeds carry
dates from the past) the window and the recency weighting stay meaningful.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from feedhub.core.hot import HotParams, HotStory, rank_hot
from feedhub.core.related import Related, RelatedDoc, RelatedIndex, RelatedParams
from feedhub.core.textnorm import html_to_text
from feedhub.errors import FeedhubError
from feedhub.models import StoryDoc
from feedhub.publish import section_subtree
from feedhub.settings import Settings
from feedhub.storage.base import Storage

log = logging.getLogger("feedhub.related")

BATCH = 500
MAX_TEXT = 2000


def related_params(settings: Settings) -> RelatedParams:
    r = settings.related
    return RelatedParams(
        limit=r.limit,
        window_days=r.window / 86400.0,
        title_weight=r.title_weight,
        half_life_days=r.half_life / 86400.0,
        max_per_source=r.max_per_source,
        same_section_boost=r.same_section_boost,
    )


def hot_params(settings: Settings) -> HotParams:
    h = settings.hot
    return HotParams(
        half_life=timedelta(seconds=h.half_life),
        velocity_window=timedelta(seconds=h.velocity_window),
        max_age=timedelta(seconds=h.max_age),
    )


def section_confidence(detail: str | None) -> float:
    """How sure filing was: the decision's confidence; full when a channel, a pin or a forcing
    rule placed it (the operator said so)."""
    if not detail:
        return 1.0
    try:
        decision = json.loads(detail)
        if decision.get("reason") in ("prior", "pinned", "rule-forced"):
            return 1.0
        return min(max(float(decision.get("confidence", 1.0)), 0.0), 1.0)
    except (ValueError, TypeError, AttributeError):
        return 1.0


def related_doc(doc: StoryDoc) -> RelatedDoc:
    body = doc.body[: MAX_TEXT * 4]
    text = " ".join(html_to_text(body).split())[:MAX_TEXT] if body else ""
    return RelatedDoc(
        story_id=doc.story_id,
        title=doc.title,
        text=text,
        published=doc.published,
        source_ids=doc.source_ids,
        section=doc.section_id,
        section_confidence=section_confidence(doc.section_detail),
    )


class Relater:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.index: RelatedIndex | None = None
        self._newest: datetime | None = None
        self.apply(settings)

    def apply(self, settings: Settings) -> None:
        """New settings; new related parameters mean a fresh index (loaded on next run)."""
        params = related_params(settings)
        if self.index is None or self.index.params != params:
            self.index = None
            self.params = params
        self.settings = settings

    def _clock(self, now: datetime) -> datetime:
        return min(now, self._newest) if self._newest is not None else now

    def _see(self, docs: Sequence[StoryDoc]) -> None:
        for doc in docs:
            if self._newest is None or doc.published > self._newest:
                self._newest = doc.published

    def _load(self, now: datetime) -> RelatedIndex:
        index = RelatedIndex(self.params)
        since = now - timedelta(days=self.params.window_days)
        docs = self.storage.related_window(since)
        if not docs:  # nothing recent: perhaps an archive; take the window before its newest
            latest = self.storage.list_stories(limit=1)
            if latest:
                since = latest[0].published - timedelta(days=self.params.window_days)
                docs = self.storage.related_window(since)
        self._see(docs)
        index.add_many(related_doc(d) for d in docs)
        stored = self.storage.related_lists([d.story_id for d in docs])
        for story_id, refs in stored.items():
            if story_id in index:
                index.restore(story_id, [r.story_id for r in refs])
        log.info("related index loaded", extra={"stories": len(index)})
        return index

    def run(self, now: datetime, limit: int | None = None) -> int:
        """Compute the due lists (at most ``limit`` stories); return how many were done."""
        if self.params.limit == 0:
            return 0
        done = 0
        while limit is None or done < limit:
            batch = BATCH if limit is None else min(BATCH, limit - done)
            due = self.storage.related_due(batch)
            if not due:
                break
            if self.index is None:
                self.index = self._load(now)
            self._see(due)
            clock = self._clock(now)
            changed: dict[str, tuple[Related, ...]] = {}
            for doc in due:
                changed.update(self.index.add(related_doc(doc), clock).lists)
            evicted = self.index.evict(clock)
            changed.update(evicted.lists)
            lists = {
                sid: [(r.story_id, r.score) for r in entries] for sid, entries in changed.items()
            }
            self.storage.save_related(lists, [d.story_id for d in due], now)
            done += len(due)
        if done:
            log.info("related reading", extra={"stories": done})
        return done


def hot_ranking(
    storage: Storage, settings: Settings, now: datetime
) -> list[tuple[str, str | None]]:
    """Every story that is hot at all, hottest first, with its section."""
    params = hot_params(settings)
    activity = storage.story_activity(now - params.max_age)
    sections = {a.story_id: a.section_id for a in activity}
    stories = [HotStory(a.story_id, a.source_count, a.member_times, a.section_id) for a in activity]
    ranked = rank_hot(stories, now, params, limit=len(stories))
    return [(h.story_id, sections[h.story_id]) for h in ranked]


class HotBoard:
    """The hot ranking, shared by pages and feeds, kept off the request path.

    Ranking reads every story of the last ``hot.max_age`` (hundreds of milliseconds with
    100,000 stories stored), so it is computed once and served until it is ``ttl`` old or the
    data changed; then it is recomputed in a background thread while the previous ranking is
    served (hotness moves slowly). Only the very first call waits for it.
    """

    def __init__(self, storage: Storage, settings: Callable[[], Settings], ttl: float = 60.0):
        self.storage = storage
        self.settings = settings
        self.ttl = ttl
        self._lock = threading.Lock()
        self._ranking: list[tuple[str, str | None]] | None = None
        self._at = 0.0
        self._refreshing = False
        self.generation = 0  # counts computed rankings: caches of what shows them key on it

    def invalidate(self) -> None:
        with self._lock:
            self._at = -self.ttl

    def _compute(self) -> list[tuple[str, str | None]]:
        ranking = hot_ranking(self.storage, self.settings(), datetime.now(UTC))
        with self._lock:
            self._ranking, self._at = ranking, time.monotonic()
            self.generation += 1
        return ranking

    def _refresh(self) -> None:
        try:
            self._compute()
        except FeedhubError as exc:
            log.error("hot ranking failed", extra={"error": str(exc)})
        finally:
            with self._lock:
                self._refreshing = False

    def ranking(self) -> list[tuple[str, str | None]]:
        with self._lock:
            current, stale = self._ranking, time.monotonic() - self._at >= self.ttl
            start = current is not None and stale and not self._refreshing
            if start:
                self._refreshing = True
        if current is None:
            return self._compute()
        if start:
            threading.Thread(target=self._refresh, name="feedhub-hot", daemon=True).start()
        return current

    def top(self, section: str | None, limit: int) -> list[str]:
        """The hottest story ids, overall or in a section and its children. A section's stop
        at the ``limit``-th: right after the ranking is asked for, a refresh may have started
        in the background, and until it ends every step here runs at a fraction of its speed
        (it competes for the interpreter)."""
        ranking = self.ranking()
        if section is None:
            return [sid for sid, _ in ranking[:limit]]
        wanted = section_subtree(self.settings().sections, section)
        return list(itertools.islice((sid for sid, sec in ranking if sec in wanted), limit))
