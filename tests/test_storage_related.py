"""The storage contract for related reading and hot, on SQLite and PostgreSQL (search: in
test_search)."""

from __future__ import annotations

from datetime import timedelta

from feedhub.models import Filing, StoryAssignment, StoryLink
from feedhub.storage.base import Storage
from tests.test_storage import T0, db_url, item, poll, storage, sync

__all__ = ["db_url", "storage"]  # fixtures used here


def clustered(store: Storage, *, join: bool = True) -> dict[str, str]:
    """Every pending item founds its own story, except (with ``join``) entry-2, which joins
    entry-1's. Returns entry id -> story id."""
    pending = store.pending_items()
    by_entry = {p.stored.item.entry_id: p for p in pending}
    first = by_entry["entry-1"].stored.item.key
    out, assignments = {}, []
    for entry, p in by_entry.items():
        if join and entry == "entry-2":
            assignments.append(StoryAssignment(p.pk, first, False, b"f", StoryLink("same-url"), T0))
            out[entry] = first
        else:
            key = p.stored.item.key
            assignments.append(
                StoryAssignment(p.pk, key, True, b"f", StoryLink(), p.stored.published)
            )
            out[entry] = key
    store.assign_stories(assignments, T0)
    return out


def test_due_lists_saved_and_read(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(
        storage, "a", [item(1, title="兰陵县项目集中开工"), item(3, title="郯城县项目集中开工")], T0
    )
    poll(storage, "b", [item(2, "b", title="【临沂】兰陵县项目集中开工")], T0)
    stories = clustered(storage)
    s1, s3 = stories["entry-1"], stories["entry-3"]
    due = {d.story_id: d for d in storage.related_due()}
    assert set(due) == {s1, s3}
    assert due[s1].title == "兰陵县项目集中开工" and due[s1].source_ids == ("a", "b")
    window = storage.related_window(T0 - timedelta(days=1))
    assert {d.story_id for d in window} == {s1, s3}
    assert storage.related_window(T0 + timedelta(days=1)) == []

    version = storage.data_version()
    storage.save_related({s1: [(s3, 0.9)], s3: [(s1, 0.9)]}, [s1, s3], T0)
    assert storage.data_version() != version  # feeds show related links
    assert storage.related_due() == []
    lists = storage.related_lists([s1, s3, "nope"])
    assert [(r.story_id, r.title, r.score) for r in lists[s1]] == [(s3, "郯城县项目集中开工", 0.9)]
    assert set(lists) == {s1, s3}
    storage.save_related({s1: []}, [], T0)  # a list can empty
    assert s1 not in storage.related_lists([s1])

    # A new source joining, or a new section, makes the list due again.
    poll(storage, "b", [item(4, "b")], T0)
    [p] = storage.pending_items()
    storage.assign_stories([StoryAssignment(p.pk, s3, False, b"f", StoryLink("x"), T0)], T0)
    assert [d.story_id for d in storage.related_due()] == [s3]
    storage.save_related({}, [s3], T0)
    founder = next(s for s in storage.list_items(limit=10) if s.item.key == s1)
    pk = next(t.pk for t in storage.items_to_file("k", T0, ["x"]) if t.stored.item.key == s1)
    storage.file_items([Filing(pk, founder.item.key, "x", "k", "{}")], T0)
    assert [d.story_id for d in storage.related_due()] == [s1]


def test_activity_and_by_ids(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(storage, "a", [item(1), item(3)], T0)
    poll(storage, "b", [item(2, "b")], T0 + timedelta(hours=1))
    stories = clustered(storage)
    activity = {a.story_id: a for a in storage.story_activity(T0 - timedelta(days=1))}
    big = activity[stories["entry-1"]]
    assert big.source_count == 2 and len(big.member_times) == 2
    assert big.member_times == tuple(sorted(big.member_times))
    assert activity[stories["entry-3"]].source_count == 1
    assert storage.story_activity(T0 + timedelta(days=2)) == []
    ids = [stories["entry-3"], "nope", stories["entry-1"]]
    assert [s.id for s in storage.stories_by_ids(ids)] == [stories["entry-3"], stories["entry-1"]]
