"""``PortalData`` over storage: what the reader pages and the JSON API show.

Stories appear as their primary item (highest source priority, then earliest published), as
in the feeds. Section counts and latest lists are kept per data version (and shown for up to
``STALE_OK`` seconds after the data moved on); the hot ranking comes from the shared
``HotBoard``, recomputed in the background.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from feedhub.core.textnorm import html_to_text
from feedhub.models import Story
from feedhub.publish import primary_member, section_subtree
from feedhub.relate import HotBoard
from feedhub.settings import Section, Settings, Source
from feedhub.storage.base import Storage
from feedhub.web.portal import Outlet, Page, SectionNode, SourceRef, StoryCard, StoryPage

VERSION_TTL = 1.0
HOT_TTL = 60.0
# Section counts and latest lists may be this many seconds older than the data they stand for
# (the pages' Cache-Control max-age is longer): the first render after new data need not wait
# for them. The data version moves on every STALE_OK seconds, so nothing stays staler.
STALE_OK = 15.0
HOT_DEPTH = 200  # hottest stories ranked once, then filtered per section
EXCERPT_CHARS = 120
LATEST_MEMO = 256  # latest lists kept per data version (sections x sizes asked)


class StoragePortal:
    def __init__(
        self,
        settings: Callable[[], Settings],
        storage: Storage,
        hot_board: HotBoard | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.hot_board = hot_board or HotBoard(storage, settings, HOT_TTL)
        self._lock = threading.Lock()
        self._by_id: tuple[Settings, dict[str, Source]] | None = None
        self._version = ""
        self._version_at = -VERSION_TTL
        self._counts: tuple[tuple[str, float], dict[str | None, int]] | None = None
        # latest(section, n) per data version: the home page asks for one list per section
        self._latest: tuple[
            tuple[str, float], dict[tuple[str | None, int], tuple[StoryCard, ...]]
        ] = (("", -STALE_OK), {})

    # --- freshness ----------------------------------------------------------------------------

    def _stored_version(self) -> str:
        """The storage's data version, asked at most once per ``VERSION_TTL``."""
        now = time.monotonic()
        with self._lock:
            if now - self._version_at >= VERSION_TTL:
                version = self.storage.data_version()
                if version != self._version:
                    self.hot_board.invalidate()  # recomputed in the background
                self._version = version
                self._version_at = now
            return self._version

    def data_version(self) -> str:
        # Lists may lag the data by STALE_OK and hot rankings move with the clock: the
        # version moves on every STALE_OK seconds and with each new hot ranking.
        tick = int(time.time() // STALE_OK)
        return f"{self._stored_version()}|{tick}|{self.hot_board.generation}"

    def invalidate(self) -> None:
        with self._lock:
            self._version_at = -VERSION_TTL

    # --- cards --------------------------------------------------------------------------------

    def _sources(self) -> dict[str, Source]:
        """The configured sources by id, built once per settings object (cards need them for
        every story they show)."""
        settings = self.settings()
        cached = self._by_id
        if cached is None or cached[0] is not settings:
            cached = self._by_id = (settings, {s.id: s for s in settings.sources})
        return cached[1]

    def card(self, story: Story) -> StoryCard:
        sources_by_id = self._sources()
        primary = primary_member(story, sources_by_id)
        item = primary.stored.item
        known = sources_by_id.get(item.source_id)
        name = known.name if known else item.source_id
        sources = [SourceRef(item.source_id, name, item.link)]
        seen = {item.source_id}
        for member in sorted(story.members, key=lambda m: m.stored.published):
            sid = member.stored.item.source_id
            if sid not in seen and sid in sources_by_id:
                seen.add(sid)
                sources.append(SourceRef(sid, sources_by_id[sid].name, member.stored.item.link))
        body = item.summary or item.content or ""
        excerpt = " ".join(html_to_text(body[:2000]).split())[:EXCERPT_CHARS] if body else ""
        return StoryCard(
            id=story.id,
            title=item.title,
            url=item.link,
            published=story.published,
            sources=tuple(sources),
            section_id=story.section_id or primary.stored.section_id,
            excerpt=excerpt,
        )

    def cards(self, stories: Sequence[Story]) -> tuple[StoryCard, ...]:
        return tuple(self.card(s) for s in stories)

    # --- sections -----------------------------------------------------------------------------

    def _fresh(self, version: str, made: tuple[str, float]) -> bool:
        """Whether something made at ``made`` (data version, monotonic time) may be shown:
        made from this data, or less than ``STALE_OK`` ago (pages re-render that often)."""
        return made[0] == version or time.monotonic() - made[1] < STALE_OK

    def _story_counts(self) -> dict[str | None, int]:
        version = self._stored_version()
        cached = self._counts
        if cached is not None and self._fresh(version, cached[0]):
            return cached[1]
        stories = self.storage.story_counts()
        self._counts = ((version, time.monotonic()), stories)
        return stories

    def _subtree(self, section_id: str) -> set[str]:
        return section_subtree(self.settings().sections, section_id)

    def sections(self) -> Sequence[SectionNode]:
        counts = self._story_counts()
        sections = self.settings().sections
        out = []
        for section in _parents_first(self.settings()):
            total = sum(counts.get(sid, 0) for sid in section_subtree(sections, section.id))
            out.append(SectionNode(section.id, section.title, section.parent, total))
        return out

    def section_stories(self, section_id: str, page: int, per_page: int) -> Page | None:
        if section_id not in {s.id for s in self.settings().sections}:
            return None
        subtree = self._subtree(section_id)
        counts = self._story_counts()
        total = sum(counts.get(sid, 0) for sid in subtree)
        pages = max(1, -(-total // per_page))
        found = self.storage.list_stories(
            section_ids=subtree, limit=per_page, offset=(page - 1) * per_page
        )
        return Page(self.cards(found), page, pages, total)

    # --- stories ------------------------------------------------------------------------------

    def story(self, story_id: str) -> StoryPage | None:
        story = self.storage.get_story(story_id)
        if story is None or story.id != story_id:
            return None
        sources_by_id = self._sources()
        card = self.card(story)
        primary = primary_member(story, sources_by_id)
        item = primary.stored.item
        outlets = tuple(
            Outlet(
                m.stored.item.source_id,
                sources_by_id[m.stored.item.source_id].name
                if m.stored.item.source_id in sources_by_id
                else m.stored.item.source_id,
                m.stored.item.title,
                m.stored.item.link,
                m.stored.published,
            )
            for m in sorted(story.members, key=lambda m: m.stored.published)
        )
        refs = self.storage.related_lists([story.id]).get(story.id, [])
        related = self.cards(self.storage.stories_by_ids([r.story_id for r in refs]))
        return StoryPage(
            card=card,
            content_html=item.content or item.summary or "",
            author=item.author,
            outlets=outlets,
            related=related,
        )

    def hot(self, section_id: str | None, n: int) -> Sequence[StoryCard]:
        return self.cards(self.storage.stories_by_ids(self.hot_board.top(section_id, n)))

    def latest(self, section_id: str | None, n: int) -> Sequence[StoryCard]:
        version = self._stored_version()
        memo = self._latest
        if not self._fresh(version, memo[0]):
            memo = self._latest = ((version, time.monotonic()), {})
        found = memo[1].get((section_id, n))
        if found is not None:
            return found
        if section_id is None:
            found = self.cards(self.storage.list_stories(limit=n))
        else:
            subtree = self._subtree(section_id)
            found = self.cards(self.storage.list_stories(section_ids=subtree, limit=n))
        if len(memo[1]) < LATEST_MEMO:
            memo[1][(section_id, n)] = found
        return found

    def search(self, q: str, page: int, per_page: int) -> Page:
        found, total = self.storage.search_stories(
            q.split(), limit=per_page, offset=(page - 1) * per_page
        )
        pages = max(1, -(-total // per_page))
        return Page(self.cards(found), page, pages, total)


def _parents_first(settings: Settings) -> list[Section]:
    """Sections in config order, but never a child before its parent."""
    placed: list[Section] = []
    done: set[str] = set()
    pending = list(settings.sections)
    while pending:
        rest = []
        for section in pending:
            if section.parent is None or section.parent in done:
                placed.append(section)
                done.add(section.id)
            else:
                rest.append(section)
        if len(rest) == len(pending):  # a cycle cannot pass validation; be safe anyway
            placed += rest
            break
        pending = rest
    return placed
