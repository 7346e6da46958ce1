"""Search terms, and full-text search through storage on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from feedhub.core.searchterms import index_terms, query_phrases
from feedhub.models import StoryAssignment, StoryLink
from feedhub.search import Indexer
from feedhub.storage.base import Storage
from tests.test_storage import T0, db_url, item, poll, storage, sync

__all__ = ["db_url", "storage"]  # fixtures used here


def test_terms_are_character_pairs_and_words() -> None:
    assert index_terms("招商引资 Linyi", "２０２５年") == "招商 商引 引资 linyi 2025 年"
    assert query_phrases("招商引资 沂 LINYI") == ([["招商", "商引", "引资"], ["linyi"]], ["沂"])
    assert query_phrases("%_ ！") == ([], [])


def stories_for(store: Storage) -> dict[str, str]:
    out = {}
    assignments = []
    for p in store.pending_items():
        key = p.stored.item.key
        assignments.append(StoryAssignment(p.pk, key, True, b"f", StoryLink(), T0))
        out[p.stored.item.entry_id] = key
    store.assign_stories(assignments, T0)
    return out


def found(store: Storage, query: str) -> set[str]:
    stories, total = store.search_stories(query.split(), limit=50)
    assert total == len(stories)
    return {s.id for s in stories}


def test_search_through_the_index(storage: Storage) -> None:
    sync(storage, "a")
    items = [
        item(1, title="沂河岸边的秋天"),
        replace(item(2, title="Linyi 新闻"), summary="<p>沂河 水位上涨 100%</p>"),
        item(3, title="临沂招商引资项目签约"),
        item(4, title="济南 天气"),
    ]
    poll(storage, "a", items, T0)
    ids = stories_for(storage)
    assert found(storage, "沂河") == set()  # not indexed yet
    assert Indexer(storage).run(T0) == 4
    assert Indexer(storage).run(T0) == 0
    assert found(storage, "沂河") == {ids["entry-1"], ids["entry-2"]}
    assert found(storage, "沂河 水位") == {ids["entry-2"]}  # every word
    assert found(storage, "招商引资") == {ids["entry-3"]}  # inside running text
    assert found(storage, "商签") == set()  # not consecutive
    assert found(storage, "linyi") == found(storage, "LIN") == {ids["entry-2"]}  # word prefix
    assert found(storage, "沂") == {ids["entry-1"], ids["entry-2"], ids["entry-3"]}  # scanned
    assert found(storage, "沂 秋天") == {ids["entry-1"]}
    assert found(storage, "_ %") == set()
    page, total = storage.search_stories(["沂河"], limit=1, offset=1)
    assert len(page) == 1 and total == 2
    assert storage.search_stories(["沂河"], section_ids=["x"]) == ([], 0)

    # A changed item is indexed again: the old text is no longer found, the new one is.
    poll(storage, "a", [item(4, title="青岛 海风", version="v2")], T0)
    assert found(storage, "青岛") == set()
    assert Indexer(storage).run(T0) == 1
    assert found(storage, "青岛") == {ids["entry-4"]} and found(storage, "济南") == set()


def test_terms_made_at_parse_time_are_indexed_on_insert(storage: Storage) -> None:
    sync(storage, "a")
    made = replace(item(1, title="兰陵县招商引资"), search_terms=index_terms("兰陵县招商引资"))
    poll(storage, "a", [made, item(2, title="沂河")], T0)
    ids = stories_for(storage)
    assert len(storage.items_to_index()) == 1  # only the second waits for the indexer
    assert found(storage, "招商") == {ids["entry-1"]}  # no indexer run needed
