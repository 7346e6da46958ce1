"""``PortalData`` over storage: what the reader pages and the JSON API show.

Stories appear as their primary item (highest source priority, then earliest published), as
in the feeds. Cards are read narrowly (``storage.pages``: only what a card shows). What is read
(section counts, newest lists, cards, search matches) is kept per data version and shown for
up to ``STALE_OK`` seconds after the data moved on; sections are counted only for the pages
that show counts (``SectionTree``); the hot ranking comes from the shared ``HotBoard``,
recomputed in the background.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from feedhub.core.textnorm import html_to_text
from feedhub.models import Story
from feedhub.publish import primary_index, primary_member, section_subtree
from feedhub.relate import HotBoard
from feedhub.settings import Section, Settings, Source
from feedhub.storage.base import Storage
from feedhub.storage.pages import CardMember, CardStory, PageReads, card_story, page_reads
from feedhub.web.portal import Outlet, Page, SectionNode, SourceRef, StoryCard, StoryPage

VERSION_TTL = 1.0
HOT_TTL = 60.0
# Section counts and latest lists may be this many seconds older than the data they stand for
# (the pages' Cache-Control max-age is longer): the first render after new data need not wait
# for them. The data version moves on every STALE_OK seconds, so nothing stays staler.
STALE_OK = 15.0
EXCERPT_CHARS = 120
LATEST_MEMO = 256  # latest lists kept per data version (sections x sizes asked)
CARD_MEMO = 4096  # cards kept per data version
# Search results kept per data version: all matching ids, so paging through them reads only
# the cards of each page.
SEARCH_MEMO = 64
SEARCH_MEMO_IDS = 20_000  # longer results are read again for each page
# The newest lists of every section are read together, this many each, on the first ask for
# one (the home page shows one box per section, 6 each, and the 10 newest overall).
GROUP_LIMIT = 10


@dataclass
class _Memo:
    """What was read for one data version, and when (monotonic) that version was first seen."""

    made: tuple[str, float]
    counts: dict[str, int] = field(default_factory=dict)  # the sections counted so far
    latest: dict[tuple[str | None, int], tuple[StoryCard, ...]] = field(default_factory=dict)
    groups: dict[str | None, list[CardStory]] | None = None  # newest GROUP_LIMIT per section
    cards: dict[str, StoryCard] = field(default_factory=dict)
    searches: dict[tuple[str, ...], list[str]] = field(default_factory=dict)  # all matches


class StoragePortal:
    def __init__(
        self,
        settings: Callable[[], Settings],
        storage: Storage,
        hot_board: HotBoard | None = None,
        reads: PageReads | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.reads: PageReads = reads or page_reads(storage)
        self.hot_board = hot_board or HotBoard(storage, settings, HOT_TTL)
        self._lock = threading.Lock()
        self._by_id: tuple[Settings, dict[str, Source]] | None = None
        self._version = ""
        self._version_at = -VERSION_TTL
        self._memo = _Memo(("", -STALE_OK))

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

    def forget(self) -> None:
        """Drop everything kept (counts, lists, cards) and ask storage for its version again:
        the next render reads as the first one after new data does."""
        with self._lock:
            self._version_at = -VERSION_TTL
            self._memo = _Memo(("", -STALE_OK))

    def _current(self) -> _Memo:
        """What was read for the current data, or read less than ``STALE_OK`` ago (pages
        re-render that often); a new, empty memo otherwise."""
        version = self._stored_version()
        memo = self._memo
        if memo.made[0] != version and time.monotonic() - memo.made[1] >= STALE_OK:
            memo = self._memo = _Memo((version, time.monotonic()))
        return memo

    # --- cards --------------------------------------------------------------------------------

    def _sources(self) -> dict[str, Source]:
        """The configured sources by id, built once per settings object (cards need them for
        every story they show)."""
        settings = self.settings()
        cached = self._by_id
        if cached is None or cached[0] is not settings:
            cached = self._by_id = (settings, {s.id: s for s in settings.sources})
        return cached[1]

    def _primary(self, story: CardStory) -> CardMember:
        members = [(m.source_id, m.published) for m in story.members]
        return story.members[primary_index(members, self._sources())]

    def _card(self, story: CardStory) -> StoryCard:
        sources_by_id = self._sources()
        primary = self._primary(story)
        known = sources_by_id.get(primary.source_id)
        name = known.name if known else primary.source_id
        sources = [SourceRef(primary.source_id, name, primary.link)]
        seen = {primary.source_id}
        for member in sorted(story.members, key=lambda m: m.published):
            sid = member.source_id
            if sid not in seen and sid in sources_by_id:
                seen.add(sid)
                sources.append(SourceRef(sid, sources_by_id[sid].name, member.link))
        body = primary.text
        excerpt = " ".join(html_to_text(body).split())[:EXCERPT_CHARS] if body else ""
        return StoryCard(
            id=story.id,
            title=primary.title,
            url=primary.link,
            published=story.published,
            sources=tuple(sources),
            section_id=story.section_id or primary.section_id,
            excerpt=excerpt,
        )

    def card(self, story: Story) -> StoryCard:
        return self._card(card_story(story))

    def cards(self, stories: Sequence[Story]) -> tuple[StoryCard, ...]:
        return tuple(self.card(s) for s in stories)

    def _cards_of(self, memo: _Memo, found: Sequence[CardStory]) -> tuple[StoryCard, ...]:
        out = []
        for story in found:
            card = memo.cards.get(story.id)
            if card is None:
                card = self._card(story)
                if len(memo.cards) < CARD_MEMO:
                    memo.cards[story.id] = card
            out.append(card)
        return tuple(out)

    def _cards_by_id(self, memo: _Memo, ids: Sequence[str]) -> tuple[StoryCard, ...]:
        """Cards of these stories in this order (unknown ones left out), read once per data
        version."""
        missing = [i for i in ids if i not in memo.cards]
        read = {s.id: s for s in self.reads.cards(missing)} if missing else {}
        out = []
        for sid in ids:
            card = memo.cards.get(sid)
            if card is None and sid in read:
                card = self._card(read[sid])
                if len(memo.cards) < CARD_MEMO:
                    memo.cards[sid] = card
            if card is not None:
                out.append(card)
        return tuple(out)

    # --- sections -----------------------------------------------------------------------------

    def _counts(self, section_ids: Collection[str]) -> dict[str, int]:
        """Story counts of these sections: the ones not counted yet for this data, in one
        read (a section's count is a walk over its part of the section index)."""
        memo = self._current()
        missing = [sid for sid in section_ids if sid not in memo.counts]
        if missing:
            memo.counts.update(self.reads.counts(missing))
        return memo.counts

    def _subtree(self, section_id: str) -> set[str]:
        return section_subtree(self.settings().sections, section_id)

    def sections(self) -> Sequence[SectionNode]:
        sections = self.settings().sections
        counts = self._counts([s.id for s in sections])
        out = []
        for section in _parents_first(self.settings()):
            total = sum(counts.get(sid, 0) for sid in section_subtree(sections, section.id))
            out.append(SectionNode(section.id, section.title, section.parent, total))
        return out

    def section_tree(self) -> Sequence[SectionNode]:
        """``SectionTree``: the sections, not counted."""
        return [SectionNode(s.id, s.title, s.parent, -1) for s in _parents_first(self.settings())]

    def section_stories(self, section_id: str, page: int, per_page: int) -> Page | None:
        if section_id not in {s.id for s in self.settings().sections}:
            return None
        subtree = self._subtree(section_id)
        counts = self._counts(subtree)
        total = sum(counts.get(sid, 0) for sid in subtree)
        pages = max(1, -(-total // per_page))
        found = self.reads.newest(subtree, per_page, (page - 1) * per_page)
        return Page(self._cards_of(self._current(), found), page, pages, total)

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
        related = self._cards_of(self._current(), self.reads.related(story.id))
        return StoryPage(
            card=card,
            content_html=item.content or item.summary or "",
            author=item.author,
            outlets=outlets,
            related=related,
        )

    def hot(self, section_id: str | None, n: int) -> Sequence[StoryCard]:
        return self._cards_by_id(self._current(), self.hot_board.top(section_id, n))

    def latest(self, section_id: str | None, n: int) -> Sequence[StoryCard]:
        memo = self._current()
        found = memo.latest.get((section_id, n))
        if found is not None:
            return found
        newest = self._grouped(memo, section_id, n)
        if newest is None:
            subtree = None if section_id is None else self._subtree(section_id)
            newest = self.reads.newest(subtree, n)
        found = self._cards_of(memo, newest[:n])
        if len(memo.latest) < LATEST_MEMO:
            memo.latest[(section_id, n)] = found
        return found

    def _grouped(self, memo: _Memo, section_id: str | None, n: int) -> list[CardStory] | None:
        """The newest ``n`` of a section (or of all) from the per-section lists, read for all
        sections at once on the first ask for a section's; None when they do not answer it."""
        sections = self.settings().sections
        known = section_id is None or any(s.id == section_id for s in sections)
        if n > GROUP_LIMIT or not known:
            return None
        if memo.groups is None:
            if section_id is None:
                return None  # a page that lists only the newest overall: one walk is enough
            groups: dict[str | None, Collection[str] | None] = {
                s.id: section_subtree(sections, s.id) for s in sections
            }
            groups[None] = None
            memo.groups = self.reads.newest_in_groups(groups, GROUP_LIMIT)
        return memo.groups.get(section_id)

    def search(self, q: str, page: int, per_page: int) -> Page:
        memo = self._current()
        words = tuple(q.split())
        ids = memo.searches.get(words)
        if ids is None:
            ids = self.reads.search(words)  # every match: their number is shown too
            if len(memo.searches) < SEARCH_MEMO and len(ids) <= SEARCH_MEMO_IDS:
                memo.searches[words] = ids
        start = (page - 1) * per_page
        found = self._cards_by_id(memo, ids[start : start + per_page])
        return Page(found, page, max(1, -(-len(ids) // per_page)), len(ids))


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
