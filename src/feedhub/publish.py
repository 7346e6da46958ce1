"""What a published feed contains: which items, as which entries, under which title.

Pure functions over settings and stored items. A section feed covers the stories filed under
that section or any section below it (each item is filed by what it says, see ``sections``); a
region feed covers the sources that declare the region. Entry GUIDs are derived from (source id,
entry id) only, so they never change once published, whatever happens to the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from urllib.parse import quote, urljoin

from feedhub.models import (
    FeedEntry,
    FeedMeta,
    RelatedLink,
    RelatedRef,
    SourceCredit,
    StoredItem,
    Story,
    StoryMember,
)
from feedhub.settings import Section, Settings, Source

FeedKind = Literal["all", "section", "source", "region"]
FORMATS = {"xml": "rss", "atom": "atom", "json": "json"}


def item_guid(key: str) -> str:
    return f"urn:feedhub:item:{key}"


@dataclass(frozen=True, slots=True)
class FeedScope:
    """A feed that exists: what it is called and which sources it covers."""

    kind: FeedKind
    ident: str  # "" for all
    title: str
    description: str
    source_ids: tuple[str, ...]
    path: str  # e.g. "feeds/section/jingji" (no extension)
    section_ids: tuple[str, ...] = ()  # a section feed: the section and every one below it
    hot: bool = False  # the hottest stories rather than the newest


def section_subtree(sections: Sequence[Section], root: str) -> set[str]:
    children: dict[str | None, list[str]] = {}
    for section in sections:
        children.setdefault(section.parent, []).append(section.id)
    found, stack = set(), [root]
    while stack:
        current = stack.pop()
        if current in found:
            continue
        found.add(current)
        stack.extend(children.get(current, ()))
    return found


def section_path(sections: Sequence[Section], section_id: str) -> list[Section]:
    """Root first: 情感 > 故事."""
    by_id = {s.id: s for s in sections}
    path: list[Section] = []
    current: str | None = section_id
    while current is not None and current in by_id and by_id[current] not in path:
        path.append(by_id[current])
        current = by_id[current].parent
    return list(reversed(path))


def resolve_scope(
    settings: Settings, kind: FeedKind, ident: str = "", *, hot: bool = False
) -> FeedScope | None:
    """The feed named by the URL, or None when no such section/source/region exists."""
    if hot:
        if kind not in ("all", "section"):
            return None
        plain = resolve_scope(settings, kind, ident)
        if plain is None:
            return None
        return replace(
            plain,
            title=f"{plain.title} - 热门",
            description=f"{plain.description}（热门文章）",
            path=f"{plain.path}/hot" if kind == "section" else "feeds/hot",
            hot=True,
        )
    site = settings.site
    sources = settings.sources
    if kind == "all":
        return FeedScope(
            "all",
            "",
            site.title,
            site.description or site.title,
            tuple(s.id for s in sources),
            "feeds/all",
        )
    if kind == "section":
        sections = {s.id: s for s in settings.sections}
        if ident not in sections:
            return None
        subtree = section_subtree(settings.sections, ident)
        trail = " > ".join(s.title for s in section_path(settings.sections, ident))
        return FeedScope(
            "section",
            ident,
            f"{site.title} - {trail}",
            f"{site.title}: {trail}",
            tuple(s.id for s in sources if s.section in subtree),
            f"feeds/section/{ident}",
            tuple(s.id for s in settings.sections if s.id in subtree),
        )
    if kind == "source":
        source = next((s for s in sources if s.id == ident), None)
        if source is None:
            return None
        return FeedScope(
            "source",
            ident,
            f"{source.name} - {site.title}",
            f"{source.name}（{site.title} 整理）",
            (source.id,),
            f"feeds/source/{ident}",
        )
    regional = tuple(s.id for s in sources if s.region == ident)
    if not regional:
        return None
    return FeedScope(
        "region",
        ident,
        f"{site.title} - {ident}",
        f"{site.title}: {ident}",
        regional,
        f"feeds/region/{ident}",
    )


def all_scopes(settings: Settings) -> list[FeedScope]:
    """Every feed the site publishes: all, hot, each section (and its hot), each region, each
    source."""
    scopes = [resolve_scope(settings, "all"), resolve_scope(settings, "all", hot=True)]
    for s in settings.sections:
        scopes += [
            resolve_scope(settings, "section", s.id),
            resolve_scope(settings, "section", s.id, hot=True),
        ]
    regions = sorted({s.region for s in settings.sources if s.region})
    scopes += [resolve_scope(settings, "region", r) for r in regions]
    scopes += [resolve_scope(settings, "source", s.id) for s in settings.sources]
    return [s for s in scopes if s is not None]


def feed_meta(settings: Settings, scope: FeedScope, updated: datetime) -> FeedMeta:
    base = settings.site.base_url
    return FeedMeta(
        title=scope.title,
        description=scope.description,
        language=settings.site.language,
        home_url=base,
        self_url=urljoin(base, quote(scope.path)),
        updated=updated,
        ttl_minutes=max(1, int(settings.schedule.default_interval // 60)),
    )


def to_entry(stored: StoredItem, source: Source | None, sections: dict[str, Section]) -> FeedEntry:
    item = stored.item
    key = item.key
    section_id = stored.section_id or (source.section if source else None)
    section = sections.get(section_id) if section_id else None
    credit = SourceCredit(item.source_id, source.name if source else item.source_id, item.link)
    return FeedEntry(
        id=key,
        guid=item_guid(key),
        title=item.title,
        link=item.link,
        published=stored.published,
        updated=entry_updated(stored),
        content_html=item.content or item.summary,
        summary_html=item.summary if item.content else None,
        author=item.author,
        section_id=section.id if section else None,
        section_title=section.title if section else None,
        sources=(credit,),
    )


def entry_updated(stored: StoredItem) -> datetime:
    """When the entry last changed: our own record of an edit, else what the feed said."""
    if stored.last_changed > stored.first_seen:
        return max(stored.last_changed, stored.published)
    return max(stored.item.updated or stored.published, stored.published)


def to_entries(settings: Settings, stored: Sequence[StoredItem]) -> list[FeedEntry]:
    sources = {s.id: s for s in settings.sources}
    sections = {s.id: s for s in settings.sections}
    return [to_entry(s, sources.get(s.item.source_id), sections) for s in stored]


def primary_index(members: Sequence[tuple[str, datetime]], sources: Mapping[str, Source]) -> int:
    """Which of a story's members, given as (source id, published) in the order they
    arrived, the story is shown as: the highest ``priority`` source's item, then the earliest
    published, then the first to arrive (documented in the README)."""

    def rank(order: int) -> tuple[int, datetime, int]:
        source_id, published = members[order]
        source = sources.get(source_id)
        return (-(source.priority if source else 0), published, order)

    return min(range(len(members)), key=rank)


def primary_member(story: Story, sources: dict[str, Source]) -> StoryMember:
    """The member a story is shown as (``primary_index``)."""
    members = [(m.stored.item.source_id, m.stored.published) for m in story.members]
    return story.members[primary_index(members, sources)]


def story_entry(story: Story, settings: Settings) -> FeedEntry:
    """One entry per story: the primary item's text, every outlet credited, the GUID and
    published time fixed when the story was first published (a late repost changes neither)."""
    sources = {s.id: s for s in settings.sources}
    sections = {s.id: s for s in settings.sections}
    # A source removed from the config is no longer credited, unless nothing else is left.
    kept = tuple(m for m in story.members if m.stored.item.source_id in sources)
    if kept and len(kept) != len(story.members):
        story = replace(story, members=kept)
    primary = primary_member(story, sources)
    section = sections.get(story.section_id) if story.section_id else None
    base = to_entry(primary.stored, sources.get(primary.stored.item.source_id), sections)
    others = sorted(
        (m for m in story.members if m is not primary), key=lambda m: m.stored.published
    )
    credits = [base.sources[0]]
    seen = {primary.stored.item.source_id}
    for member in others:
        sid = member.stored.item.source_id
        if sid in seen:
            continue
        seen.add(sid)
        source = sources.get(sid)
        credits.append(SourceCredit(sid, source.name if source else sid, member.stored.item.link))
    return FeedEntry(
        id=story.id,
        guid=item_guid(story.id),  # the founder's item GUID: the same entry before and after
        title=base.title,
        link=base.link,
        published=story.published,
        updated=max(max(entry_updated(m.stored) for m in story.members), story.published),
        content_html=base.content_html,
        summary_html=base.summary_html,
        author=base.author,
        section_id=section.id if section else base.section_id,
        section_title=section.title if section else base.section_title,
        sources=tuple(credits),
    )


def story_url(settings: Settings, story_id: str) -> str:
    """The story's page on this site."""
    return urljoin(settings.site.base_url, f"story/{quote(story_id)}")


def with_related(
    settings: Settings,
    entries: Sequence[FeedEntry],
    story_ids: Sequence[str | None],
    lists: Mapping[str, Sequence[RelatedRef]],
) -> list[FeedEntry]:
    """Entries with their story's related reading (links to the related stories' pages)."""
    out = []
    for entry, story_id in zip(entries, story_ids, strict=True):
        refs = lists.get(story_id, ()) if story_id else ()
        if refs:
            links = tuple(
                RelatedLink(r.story_id, r.title, story_url(settings, r.story_id)) for r in refs
            )
            entry = replace(entry, related=links)
        out.append(entry)
    return out
