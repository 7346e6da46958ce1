"""The storage contract for stories, on SQLite and PostgreSQL (fixtures of test_storage)."""

from __future__ import annotations

from datetime import timedelta

from feedhub.models import StoryAssignment, StoryLink
from feedhub.storage.base import Storage
from tests.test_storage import T0, db_url, item, poll, storage, sync

__all__ = ["db_url", "storage"]  # fixtures used here


def founder(pk: int, key: str, fp: bytes = b"fp") -> StoryAssignment:
    return StoryAssignment(pk, key, True, fp, StoryLink(), T0)


def joiner(pk: int, story: str, matched: str) -> StoryAssignment:
    return StoryAssignment(
        pk, story, False, b"fp2", StoryLink("near-duplicate", matched, 0.93, 0.88, 0.95), T0
    )


def test_pending_items_and_assignment(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(storage, "a", [item(1, "a"), item(2, "a")], T0)
    poll(storage, "b", [item(3, "b")], T0)
    pending = storage.pending_items()
    assert [p.stored.item.entry_id for p in pending] == ["entry-1", "entry-2", "entry-3"]
    first, second, third = pending
    key1 = first.stored.item.key
    later = T0 + timedelta(hours=1)
    assert (
        storage.assign_stories(
            [founder(first.pk, key1), founder(second.pk, second.stored.item.key)], T0
        )
        == 2
    )
    version = storage.data_version()
    assert storage.assign_stories([joiner(third.pk, key1, key1)], later) == 1
    assert storage.data_version() != version  # a join changes what merged feeds show
    assert storage.pending_items() == []

    story = storage.get_story(key1)
    assert story is not None and story.id == key1
    assert [m.stored.item.entry_id for m in story.members] == ["entry-1", "entry-3"]
    assert story.source_ids == ("a", "b")
    assert story.members[1].link.reason == "near-duplicate"
    assert story.members[1].link.text_similarity == 0.95
    assert story.published == T0 and story.updated_at == later
    assert storage.get_story(third.stored.item.key) == story  # by any member's key
    assert storage.get_story("nope") is None


def test_an_assigned_item_is_not_reassigned(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [item(1, "a"), item(2, "a")], T0)
    one, two = storage.pending_items()
    storage.assign_stories([founder(one.pk, one.stored.item.key)], T0)
    storage.assign_stories([founder(two.pk, two.stored.item.key)], T0)
    # a second clusterer's late verdict for an item already placed changes nothing
    assert storage.assign_stories([joiner(two.pk, one.stored.item.key, "x")], T0) == 0
    story = storage.get_story(one.stored.item.key)
    assert story is not None and len(story.members) == 1


def test_list_stories_newest_first_filtered_by_source(storage: Storage) -> None:
    sync(storage, "a", "b", "c")
    poll(storage, "a", [item(1, "a", published=T0)], T0)
    poll(storage, "b", [item(2, "b", published=T0 + timedelta(hours=2))], T0)
    poll(storage, "c", [item(3, "c", published=T0 + timedelta(hours=3))], T0)
    p1, p2, p3 = storage.pending_items()
    storage.assign_stories(
        [
            StoryAssignment(p1.pk, p1.stored.item.key, True, b"x", StoryLink(), T0),
            StoryAssignment(
                p2.pk, p2.stored.item.key, True, b"x", StoryLink(), T0 + timedelta(hours=2)
            ),
            joiner(p3.pk, p1.stored.item.key, p1.stored.item.key),
        ],
        T0,
    )
    all_stories = storage.list_stories()
    assert [s.id for s in all_stories] == [p2.stored.item.key, p1.stored.item.key]
    carried_by_c = storage.list_stories(["c"])
    assert [s.id for s in carried_by_c] == [p1.stored.item.key]
    assert storage.list_stories([]) == []
    multi = storage.list_stories(min_members=2)
    assert [s.id for s in multi] == [p1.stored.item.key]
    assert len(storage.list_stories(limit=1, offset=1)) == 1


def test_window_entries(storage: Storage) -> None:
    sync(storage, "a")
    poll(storage, "a", [item(1, "a"), item(2, "a")], T0)
    one, two = storage.pending_items()
    storage.assign_stories([founder(one.pk, one.stored.item.key, b"\x00\x01")], T0)
    entries = storage.window_entries(0, T0 - timedelta(days=1))
    assert [(e.key, e.story_id, e.fingerprint) for e in entries] == [
        (one.stored.item.key, one.stored.item.key, b"\x00\x01")
    ]
    assert storage.window_entries(one.pk, T0 - timedelta(days=1)) == []
    assert storage.window_entries(0, T0 + timedelta(days=1)) == []  # older than the window


def test_removing_a_source_keeps_stories_of_others(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(storage, "a", [item(1, "a")], T0)
    poll(storage, "b", [item(2, "b")], T0)
    one, two = storage.pending_items()
    key = one.stored.item.key
    storage.assign_stories([founder(one.pk, key), joiner(two.pk, key, key)], T0)
    sync(storage, "b")  # "a" leaves the config
    story = storage.get_story(key)
    assert story is not None and story.source_ids == ("a", "b")
    assert [s.id for s in storage.list_stories(["b"])] == [key]
