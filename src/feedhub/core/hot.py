"""Hot stories: carried by many outlets, spreading fast, and recent.

Why this formula: the number of distinct sources is the plainest sign that a story matters
(one outlet's ten reposts count once), and members that arrived in the last
``velocity_window`` show it is still spreading. Both enter on a log scale, so the fifth outlet
adds less than the second, and the sum decays by half every ``half_life`` of the story's age
(from its first member), so yesterday's big story yields to today's::

    score = (log2(1 + sources) + velocity_weight * log2(1 + recent))
            * 2 ** (-age / half_life)

Pure: ``now`` is passed in; the caller keeps the members' first-seen times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Hot", "HotParams", "HotStory", "hot_score", "rank_hot", "rank_hot_by_section"]


@dataclass(frozen=True, slots=True)
class HotParams:
    half_life: timedelta = timedelta(hours=12)
    velocity_window: timedelta = timedelta(hours=6)
    velocity_weight: float = 1.0
    max_age: timedelta = timedelta(days=7)  # older stories are not ranked at all


@dataclass(frozen=True, slots=True)
class HotStory:
    """``member_times``: when each member item was first seen (or published)."""

    story_id: str
    source_count: int
    member_times: tuple[datetime, ...]
    section: str | None = None


@dataclass(frozen=True, slots=True)
class Hot:
    story_id: str
    score: float


def hot_score(
    source_count: int,
    member_times: Sequence[datetime],
    now: datetime,
    params: HotParams | None = None,
) -> float:
    """The story's hotness at ``now``; 0.0 for a story with no members or older than
    ``max_age``. Members seen after ``now`` count as seen at ``now``."""
    p = params or HotParams()
    if not member_times or source_count <= 0:
        return 0.0
    first = min(member_times)
    age = max((now - first).total_seconds(), 0.0)
    if age > p.max_age.total_seconds():
        return 0.0
    since = now - p.velocity_window
    recent = sum(1 for t in member_times if t >= since)
    base = math.log2(1 + source_count) + p.velocity_weight * math.log2(1 + recent)
    return base * math.exp2(-age / p.half_life.total_seconds())


def rank_hot(
    stories: Iterable[HotStory],
    now: datetime,
    params: HotParams | None = None,
    *,
    section: str | None = None,
    limit: int = 50,
) -> list[Hot]:
    """The hottest stories, best first (ties by story id), optionally of one section."""
    scored = [
        Hot(s.story_id, round(hot_score(s.source_count, s.member_times, now, params), 9))
        for s in stories
        if section is None or s.section == section
    ]
    scored = [h for h in scored if h.score > 0]
    scored.sort(key=lambda h: (-h.score, h.story_id))
    return scored[:limit]


def rank_hot_by_section(
    stories: Iterable[HotStory],
    now: datetime,
    params: HotParams | None = None,
    *,
    limit: int = 50,
) -> dict[str, list[Hot]]:
    """:func:`rank_hot` for every section at once (stories without a section are left out)."""
    by_section: dict[str, list[HotStory]] = {}
    for s in stories:
        if s.section is not None:
            by_section.setdefault(s.section, []).append(s)
    return {
        sec: rank_hot(members, now, params, limit=limit)
        for sec, members in sorted(by_section.items())
    }
