"""The storage contract for sections, on SQLite and PostgreSQL (fixtures of test_storage)."""

from __future__ import annotations

from datetime import timedelta

from feedhub.models import Filing, ModelRecord, StoryAssignment, StoryLink
from feedhub.storage.base import Storage
from tests.test_storage import T0, db_url, item, poll, storage, sync

__all__ = ["db_url", "storage"]  # fixtures used here

CUTOFF = T0 - timedelta(days=1)


def file_all(store: Storage, key: str, section: str) -> int:
    tasks = store.items_to_file(key, CUTOFF, ["x", "y"])
    return store.file_items(
        [Filing(t.pk, t.stored.item.key, section, key, "{}") for t in tasks], T0
    )


def test_queue_filing_and_refiling(storage: Storage) -> None:
    sync(storage, "a")
    month_ago = T0 - timedelta(days=30)
    poll(storage, "a", [item(3, published=month_ago)], month_ago)  # published and seen long ago
    poll(storage, "a", [item(1), item(2)], T0)
    tasks = storage.items_to_file("k1", CUTOFF, ["x", "y"])
    assert [t.stored.item.entry_id for t in tasks] == ["entry-2", "entry-1", "entry-3"]  # newest pk
    assert all(t.pin is None and t.stored.section_id is None for t in tasks)
    version = storage.data_version()
    assert file_all(storage, "k1", "x") == 3
    assert storage.data_version() != version  # feeds must show the new sections
    assert storage.items_to_file("k1", CUTOFF, ["x", "y"]) == []
    assert [i.section_id for i in storage.list_items()] == ["x", "x", "x"]

    # A new filing key re-files recent items only; old ones keep a section that still exists.
    again = storage.items_to_file("k2", CUTOFF, ["x", "y"])
    assert sorted(t.stored.item.entry_id for t in again) == ["entry-1", "entry-2"]
    assert storage.items_to_file("k2", CUTOFF, ["x", "y"], unfiled_only=True) == []
    # ...unless their section is gone: nothing may be left in a section nobody publishes.
    gone = storage.items_to_file("k2", CUTOFF, ["y"])
    assert sorted(t.stored.item.entry_id for t in gone) == ["entry-1", "entry-2", "entry-3"]

    # Changed content is filed again.
    poll(storage, "a", [item(1, title="changed", version="v2")], T0 + timedelta(hours=1))
    changed = storage.items_to_file("k1", CUTOFF, ["x", "y"], unfiled_only=True)
    assert [t.stored.item.entry_id for t in changed] == ["entry-1"]


def test_story_takes_its_founders_section(storage: Storage) -> None:
    sync(storage, "a", "b")
    poll(storage, "a", [item(1)], T0)
    poll(storage, "b", [item(2, "b")], T0)
    one, two = storage.pending_items()
    file_all(storage, "k", "y")  # filed before clustering
    link = StoryLink()
    storage.assign_stories([StoryAssignment(one.pk, one.stored.item.key, True, b"f", link, T0)], T0)
    assert [s.section_id for s in storage.list_stories()] == ["y"]
    storage.assign_stories([StoryAssignment(two.pk, two.stored.item.key, True, b"f", link, T0)], T0)
    # Filed after clustering: the story follows its founder.
    storage.file_items([Filing(one.pk, one.stored.item.key, "x", "k2", "{}")], T0)
    assert storage.get_story(one.stored.item.key).section_id == "x"  # type: ignore[union-attr]
    assert [s.id for s in storage.list_stories(section_ids=["x"])] == [one.stored.item.key]
    assert len(storage.list_stories(section_ids=["x", "y"])) == 2
    assert storage.list_stories(section_ids=[]) == []
    items, stories = storage.section_counts()
    assert items == {"x": 1, "y": 1} and stories == {"x": 1, "y": 1}
    assert storage.story_counts() == stories


def test_pins_and_training_items(storage: Storage) -> None:
    sync(storage, "a", "b", "c")
    poll(storage, "a", [item(n, "a") for n in range(1, 5)], T0)
    poll(storage, "b", [item(n, "b") for n in range(5, 8)], T0)
    poll(storage, "c", [item(8, "c"), item(9, "c")], T0)
    file_all(storage, "k", "x")
    key9 = next(i.item.key for i in storage.list_items("c") if i.item.entry_id == "entry-9")
    key1 = next(i.item.key for i in storage.list_items("a") if i.item.entry_id == "entry-1")
    assert storage.pin_section(key9, "y") and storage.pin_section(key1, "y")
    assert not storage.pin_section("no-such-item", "y")
    queued = storage.items_to_file("k", CUTOFF, ["x", "y"], unfiled_only=True)
    assert {t.stored.item.key for t in queued} == {key9, key1}  # a pin is filed again
    assert {t.pin for t in queued} == {"y"}

    found = storage.training_items({"x": ["a"], "y": ["b"]}, per_section=2)
    labels = [(e.stored.item.source_id, e.label) for e in found]
    # Channel items (a pinned one excluded), newest two per section, then the pins.
    assert labels.count(("a", "x")) == 2 and labels.count(("b", "y")) == 2
    assert sorted(
        e.stored.item.key for e in found if e.stored.item.source_id in "ac" and e.label == "y"
    ) == sorted([key1, key9])
    assert key1 not in {e.stored.item.key for e in found if e.label == "x"}
    others = storage.unlabeled_items(["a", "b"], 10)
    assert {s.item.source_id for s in others} == {"c"}

    filing = storage.item_filing(key9)
    assert filing is not None and filing.pin == "y" and filing.filing_key is None
    assert storage.pin_section(key9, None)
    assert storage.item_filing(key9).pin is None  # type: ignore[union-attr]
    assert storage.item_filing("nope") is None


def test_models_newest_first_and_pruned(storage: Storage) -> None:
    assert storage.latest_model() is None
    for n in range(5):
        storage.save_model(
            ModelRecord(f"v{n}", T0 + timedelta(hours=n), 10 + n, f'{{"n": {n}}}', bytes([n]) * 9)
        )
    latest = storage.latest_model()
    assert latest is not None and latest.version == "v4" and latest.data == bytes([4]) * 9
    light = storage.latest_model(with_data=False)
    assert light is not None and light.version == "v4" and light.data == b""
    assert light.examples == 14 and light.info == '{"n": 4}'
    storage.save_model(ModelRecord("v4", T0 + timedelta(hours=9), 1, "{}", b"new"))  # replaced
    assert storage.latest_model().data == b"new"  # type: ignore[union-attr]
