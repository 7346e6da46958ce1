"""New items placed in their stories while they are stored (``Clusterer.placing`` with
``record_poll``), on SQLite and PostgreSQL (fixtures of test_storage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta

import pytest

from feedhub import stories as stories_module
from feedhub.errors import StorageError
from feedhub.models import Item, StoryPlacement
from feedhub.settings import Settings
from feedhub.storage.base import Placer, Storage
from feedhub.stories import Clusterer
from tests.test_storage import T0, db_url, item, log, storage, sync
from tests.test_stories import OTHER_CITY, STORY

__all__ = ["db_url", "storage"]  # fixtures used here

REPOST_HTML = STORY.replace("<p>开工仪式后，与会人员实地观摩了部分重点项目建设现场。</p>", "")


def news(n: int, source_id: str, html: str, title: str, hours: int = 0) -> Item:
    return replace(
        item(n, source_id, title=title, published=T0 + timedelta(hours=hours)),
        summary=None,
        content=html,
        link=f"https://{source_id}.example.cn/{n}.html",
    )


ORIGINAL = news(1, "a", STORY, "兰陵县冬季重大项目集中开工 32个项目总投资86.5亿元")
REPOST = news(2, "b", REPOST_HTML, "【临沂】兰陵县冬季重大项目集中开工 32个项目总投资86.5亿元", 20)
OTHER = news(3, "b", OTHER_CITY, "郯城县冬季重大项目集中开工 21个项目总投资53.2亿元", 21)


def record(storage: Storage, items: Sequence[Item], placer: Placer | None) -> None:
    source = items[0].source_id
    state = storage.get_state(source)
    assert state is not None
    storage.record_poll(state, list(items), log(source, T0), T0, placer)


def place(storage: Storage, clusterer: Clusterer, items: Sequence[Item]) -> None:
    with clusterer.placing(T0) as placer:
        record(storage, items, placer)


def partition(storage: Storage) -> set[frozenset[str]]:
    stories = storage.list_stories(limit=100)
    return {frozenset(m.stored.item.entry_id for m in s.members) for s in stories}


def test_items_are_stored_in_their_stories(storage: Storage) -> None:
    sync(storage, "a", "b")
    clusterer = Clusterer(storage, Settings())
    place(storage, clusterer, [ORIGINAL])
    place(storage, clusterer, [REPOST, OTHER])
    assert storage.pending_items() == []  # nothing left for the queue
    assert clusterer.take_placed() == 3 and clusterer.take_placed() == 0
    story = storage.get_story(ORIGINAL.key)
    assert story is not None and story.id == ORIGINAL.key
    assert [m.stored.item.entry_id for m in story.members] == ["entry-1", "entry-2"]
    assert story.members[1].link.reason == "near-duplicate"
    assert story.members[1].link.matched_key == ORIGINAL.key
    assert story.published == ORIGINAL.published
    other = storage.get_story(OTHER.key)
    assert other is not None and len(other.members) == 1
    assert clusterer.run(T0) == 0


def test_the_same_stories_as_clustering_after_storing(storage: Storage) -> None:
    sync(storage, "a", "b")
    queued = Clusterer(storage, Settings())
    record(storage, [ORIGINAL], None)
    record(storage, [REPOST, OTHER], None)
    assert queued.run(T0) == 3
    before = partition(storage)
    assert before == {frozenset({"entry-1", "entry-2"}), frozenset({"entry-3"})}
    # the same items again, under other sources, placed while stored
    sync(storage, "a", "b", "c", "d")
    placed = Clusterer(storage, Settings())
    renamed = [replace(i, source_id={"a": "c", "b": "d"}[i.source_id]) for i in (ORIGINAL,)]
    place(storage, placed, renamed)
    place(storage, placed, [replace(i, source_id="d") for i in (REPOST, OTHER)])
    stories = storage.list_stories(limit=100)
    by_sources = {
        frozenset((m.stored.item.source_id, m.stored.item.entry_id) for m in s.members)
        for s in stories
    }
    # the placed items joined the stories the first run made (same window), as a queue run would
    assert {("c", "entry-1"), ("d", "entry-2"), ("a", "entry-1"), ("b", "entry-2")} in {
        frozenset(s) for s in by_sources
    }


def test_the_earliest_published_of_a_poll_founds_its_story(storage: Storage) -> None:
    sync(storage, "b")
    clusterer = Clusterer(storage, Settings())
    early = replace(REPOST, entry_id="entry-9", published=T0 - timedelta(hours=1))
    place(storage, clusterer, [REPOST, early])  # listed later, published earlier
    story = storage.get_story(REPOST.key)
    assert story is not None and story.id == early.key


class Failing:
    """A placer whose write fails after the items were placed."""

    def __init__(self, inner: Placer) -> None:
        self.inner = inner

    def place(self, items: Sequence[Item]) -> Mapping[str, StoryPlacement]:
        return self.inner.place(items)

    def stored(self, max_pk_before: int | None, max_pk_after: int | None) -> None:
        raise StorageError("disk I/O error")


def test_a_failed_write_takes_its_items_out_of_the_index(storage: Storage) -> None:
    sync(storage, "a", "b")
    clusterer = Clusterer(storage, Settings())
    place(storage, clusterer, [ORIGINAL])
    last_pk = clusterer.last_pk
    with pytest.raises(StorageError), clusterer.placing(T0) as placer:
        record(storage, [REPOST], Failing(placer))
    assert REPOST.key not in clusterer.index
    assert clusterer.last_pk == last_pk and clusterer.take_placed() == 1
    assert storage.count_items("b") == 0
    story = storage.get_story(ORIGINAL.key)
    assert story is not None and len(story.members) == 1
    place(storage, clusterer, [REPOST])  # the retry places it as if nothing had happened
    story = storage.get_story(ORIGINAL.key)
    assert story is not None and len(story.members) == 2


def test_another_pollers_stories_are_loaded(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(storage, "a", "b")
    mine, theirs = Clusterer(storage, Settings()), Clusterer(storage, Settings())
    place(storage, mine, [OTHER])  # loads the (empty) window once
    place(storage, theirs, [ORIGINAL])
    monkeypatch.setattr(stories_module, "LOAD_EVERY", 0.0)
    place(storage, mine, [REPOST])
    story = storage.get_story(ORIGINAL.key)
    assert story is not None and len(story.members) == 2


def test_own_items_are_not_read_back(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    sync(storage, "a", "b")
    clusterer = Clusterer(storage, Settings())
    place(storage, clusterer, [ORIGINAL])
    place(storage, clusterer, [REPOST])
    read: list[int] = []
    window = storage.window_entries

    def counting(after_pk: int, since: object) -> object:
        entries = window(after_pk, since)  # type: ignore[arg-type]
        read.append(len(entries))
        return entries

    monkeypatch.setattr(storage, "window_entries", counting)
    monkeypatch.setattr(stories_module, "LOAD_EVERY", 0.0)
    place(storage, clusterer, [OTHER])
    assert read == [0]
