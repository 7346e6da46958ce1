"""The JSON API: ``/api/stories/{id}``, ``/api/hot``, ``/api/latest``, ``/api/search``.

Plain functions from a request's path and query to a status and a JSON-able value, run in a
thread by the app (they read storage). Story objects carry what the feeds carry: the primary
item's title and link, every source, the section with its trail, and related reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from feedhub.models import Story
from feedhub.publish import primary_member, section_path, section_subtree, story_url
from feedhub.settings import Settings
from feedhub.storage.base import Storage
from feedhub.web.portal_store import StoragePortal

MAX_LIMIT = 100
Result = tuple[int, Any]


def _time(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _section(settings: Settings, section_id: str | None) -> dict[str, Any] | None:
    if section_id is None:
        return None
    trail = section_path(settings.sections, section_id)
    if not trail:
        return {"id": section_id, "title": section_id, "path": [section_id]}
    return {"id": section_id, "title": trail[-1].title, "path": [s.id for s in trail]}


def story_summary(portal: StoragePortal, story: Story) -> dict[str, Any]:
    settings = portal.settings()
    card = portal.card(story)
    return {
        "id": story.id,
        "title": card.title,
        "url": card.url,
        "page": story_url(settings, story.id),
        "published": _time(story.published),
        "updated": _time(story.updated_at),
        "section": _section(settings, card.section_id),
        "sources": [{"id": s.id, "name": s.name, "url": s.url} for s in card.sources],
        "summary": card.excerpt,
    }


def story_detail(portal: StoragePortal, story: Story) -> dict[str, Any]:
    settings = portal.settings()
    sources = {s.id: s for s in settings.sources}
    primary = primary_member(story, sources)
    out = story_summary(portal, story)
    out["content_html"] = primary.stored.item.content or primary.stored.item.summary or ""
    out["members"] = [
        {
            "id": m.key,
            "source": m.stored.item.source_id,
            "title": m.stored.item.title,
            "url": m.stored.item.link,
            "published": _time(m.stored.published),
            "primary": m is primary,
            "joined_because": m.link.reason,
        }
        for m in story.members
    ]
    refs = portal.storage.related_lists([story.id]).get(story.id, [])
    out["related"] = [
        {"id": r.story_id, "title": r.title, "url": story_url(settings, r.story_id)} for r in refs
    ]
    return out


def _limit(query: Mapping[str, list[str]], default: int = 20) -> int | None:
    values = query.get("limit")
    if not values:
        return default
    try:
        limit = int(values[-1])
    except ValueError:
        return None
    return limit if 1 <= limit <= MAX_LIMIT else None


def _error(status: int, message: str) -> Result:
    return status, {"error": message}


def handle(portal: StoragePortal, storage: Storage, path: str, raw_query: bytes) -> Result:
    settings = portal.settings()
    query = parse_qs(raw_query.decode("utf-8", "replace"))
    rest = path[len("/api/") :]
    if rest.startswith("stories/"):
        ident = rest[len("stories/") :]
        story = storage.get_story(ident) if ident and "/" not in ident else None
        if story is None:
            return _error(404, f"no such story: {ident}")
        return 200, story_detail(portal, story)
    if rest not in ("hot", "latest", "search"):
        return _error(
            404, "no such endpoint: use /api/stories/ID, /api/hot, /api/latest, /api/search"
        )
    limit = _limit(query)
    if limit is None:
        return _error(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    section: str | None = (query.get("section") or [""])[-1] or None
    if section is not None and section not in {s.id for s in settings.sections}:
        return _error(404, f"no such section: {section}")
    if rest == "search":
        q = " ".join((query.get("q") or [""])[-1].split())[:64]
        if not q:
            return _error(400, "give a query: /api/search?q=words")
        subtree = section_subtree(settings.sections, section) if section is not None else None
        found, total = storage.search_stories(q.split(), limit=limit, section_ids=subtree)
        return 200, {
            "query": q,
            "total": total,
            "stories": [story_summary(portal, s) for s in found],
        }
    cards = (portal.hot if rest == "hot" else portal.latest)(section, limit)
    stories = storage.stories_by_ids([c.id for c in cards])
    return 200, {"section": section, "stories": [story_summary(portal, s) for s in stories]}
