"""``feedhub stories`` and ``feedhub story ID``: what was merged, and why."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from feedhub.models import Story
from feedhub.publish import primary_member
from feedhub.settings import Settings
from feedhub.storage.base import Storage


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def print_stories(
    settings: Settings, storage: Storage, console: Console, limit: int, everything: bool
) -> None:
    found = storage.list_stories(limit=limit, min_members=1 if everything else 2, by_update=True)
    sources = {s.id: s for s in settings.sources}
    title = "recent stories" if everything else "recent stories carried by several sources"
    table = Table(title=f"{title} ({len(found)})")
    for column in ("story", "title", "sources", "items", "published", "last join"):
        table.add_column(column, overflow="fold")
    for story in found:
        primary = primary_member(story, sources)
        names = [sources[s].name if s in sources else s for s in story.source_ids]
        table.add_row(
            story.id,
            primary.stored.item.title,
            ", ".join(names),
            str(len(story.members)),
            _when(story.published),
            _when(story.updated_at),
        )
    console.print(table)
    if not found:
        console.print("no multi-source stories yet" if not everything else "no stories yet")


def print_story(
    settings: Settings, storage: Storage, console: Console, err: Console, ident: str
) -> int:
    story = storage.get_story(ident)
    if story is None:
        err.print(f"[red]error[/red]: no story or item with id {ident!r}", highlight=False)
        return 1
    _explain(settings, story, console)
    return 0


def _explain(settings: Settings, story: Story, console: Console) -> None:
    sources = {s.id: s for s in settings.sources}
    primary = primary_member(story, sources)
    console.print(f"story {story.id}  (GUID urn:feedhub:item:{story.id})", highlight=False)
    console.print(f"  title:     {primary.stored.item.title}", highlight=False)
    console.print(f"  published: {_when(story.published)} UTC (fixed when first published)")
    console.print(
        f"  primary:   {primary.key} from {primary.stored.item.source_id} "
        "(highest source priority, then earliest published)",
        highlight=False,
    )
    table = Table(title=f"{len(story.members)} member(s), in the order they joined")
    for column in ("item", "source", "title", "published", "joined because", "similar to"):
        table.add_column(column, overflow="fold")
    for member in story.members:
        item, link = member.stored.item, member.link
        if link.reason is None:
            why = "started the story"
        else:
            why = (
                f"{link.reason}: score {link.score:.2f}, title {link.title_similarity:.2f}, "
                f"text {link.text_similarity:.2f}"
            )
        name = sources[item.source_id].name if item.source_id in sources else item.source_id
        table.add_row(
            member.key + (" *" if member is primary else ""),
            name,
            f"{item.title}\n{item.link or ''}",
            _when(member.stored.published),
            why,
            link.matched_key or "",
        )
    console.print(table)
