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

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from feedhub.core.hot import HotParams, HotStory, rank_hot
from feedhub.core.related import Related, RelatedDoc, RelatedIndex, RelatedParams
from feedhub.core.textnorm import html_to_text
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


def hot_story_ids(
    storage: Storage, settings: Settings, now: datetime, section: str | None, limit: int
) -> list[str]:
    """The hottest stories now, overall or in a section and its children."""
    params = hot_params(settings)
    activity = storage.story_activity(now - params.max_age)
    wanted = section_subtree(settings.sections, section) if section is not None else None
    stories = [
        HotStory(a.story_id, a.source_count, a.member_times, a.section_id)
        for a in activity
        if wanted is None or a.section_id in wanted
    ]
    return [h.story_id for h in rank_hot(stories, now, params, limit=limit)]
