"""``feedhub sections``, ``explain``, ``pin``, ``train`` and ``file``: where items are filed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rich.console import Console
from rich.tree import Tree

from feedhub.sections import Filer, TrainingError, explain, section_tree, train
from feedhub.settings import Settings
from feedhub.storage.base import Storage


def print_sections(settings: Settings, storage: Storage, console: Console) -> None:
    """The tree with items and stories per section; a parent counts its children."""
    items, stories = storage.section_counts()
    if not settings.sections:
        console.print("no sections configured")
        return
    tree = section_tree(settings)
    children: dict[str | None, list[str]] = {}
    for section in settings.sections:
        children.setdefault(section.parent, []).append(section.id)
    titles = {s.id: s.title for s in settings.sections}

    def total(counts: dict[str | None, int], sid: str) -> int:
        return sum(counts.get(leaf, 0) for leaf in tree.leaves_under(sid))

    root = Tree(f"{settings.site.title}: items / stories")

    def add(node: Tree, sid: str) -> None:
        label = f"{titles[sid]} ({sid})  {total(items, sid)} / {total(stories, sid)}"
        branch = node.add(label)
        for child in children.get(sid, ()):
            add(branch, child)

    for top in children.get(None, ()):
        add(root, top)
    console.print(root)
    known = set(tree.leaves)
    waiting = items.get(None, 0)
    elsewhere = sum(n for sid, n in items.items() if sid is not None and sid not in known)
    if waiting:
        console.print(f"not filed yet: {waiting} items (the worker files them after each poll)")
    if elsewhere:
        console.print(f"in sections no longer configured: {elsewhere} items (filed again soon)")
    record = storage.latest_model(with_data=False)
    if record is None:
        console.print("classifier: none trained yet (rules and source sections only)")
    else:
        info = json.loads(record.info)
        per = ", ".join(f"{k} {v}" for k, v in info.get("sections", {}).items())
        console.print(
            f"classifier {record.version}, trained {record.created_at:%Y-%m-%d %H:%M} UTC "
            f"on {record.examples} items: {per}",
            highlight=False,
        )


def print_explain(
    settings: Settings, storage: Storage, console: Console, err: Console, ident: str
) -> int:
    try:
        text = explain(Filer(storage, settings), ident)
    except KeyError:
        err.print(f"[red]error[/red]: no item with id {ident!r}", highlight=False)
        return 1
    console.print(text, highlight=False, markup=False)
    return 0


def pin(
    settings: Settings,
    storage: Storage,
    console: Console,
    err: Console,
    ident: str,
    section: str | None,
) -> int:
    if section is not None and section not in section_tree(settings).leaves:
        leaves = ", ".join(section_tree(settings).leaves)
        err.print(
            f"[red]error[/red]: {section!r} is not a leaf section (leaves: {leaves})",
            highlight=False,
        )
        return 1
    if not storage.pin_section(ident, section):
        err.print(f"[red]error[/red]: no item with id {ident!r}", highlight=False)
        return 1
    filed = Filer(storage, settings).run(datetime.now(UTC))
    what = f"pinned to {section}" if section else "unpinned"
    console.print(f"{ident}: {what} (filed {filed} item(s)); it trains the classifier next time")
    return 0


def retrain(
    settings: Settings, storage: Storage, console: Console, err: Console, force: bool
) -> int:
    now = datetime.now(UTC)
    try:
        record = train(storage, settings, now, force=force)
    except TrainingError as exc:
        err.print(f"[red]error[/red]: {exc}", highlight=False)
        return 1
    if record is None:
        console.print("training items unchanged: the current model stays (--force to retrain)")
    else:
        console.print(f"trained model {record.version} on {record.examples} items")
    filed = Filer(storage, settings).run(now)
    console.print(f"filed {filed} item(s)")
    return 0


def file_now(settings: Settings, storage: Storage, console: Console) -> int:
    filed = Filer(storage, settings).run(datetime.now(UTC))
    console.print(f"filed {filed} item(s)")
    return 0
