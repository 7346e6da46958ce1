"""The story index answers exactly as it did before its speed work, and forgets on request.

The clusterer stores each verdict (the story, the item matched, the reason and the rounded
similarities), so a faster index must give the same ``Match`` for every item of the same
sequence of calls: the same candidates and the same tie-breaking among them. The golden digests
below were computed once with the index as it was before that work. ``STREAM_GOLDEN`` covers a
seeded synthetic stream with every case the index handles: exact reposts (dozens at one instant,
more than ``max_candidates`` of them tied), lightly edited reposts, template stories with other
facts or one word replaced, items sharing only a title or only a link, a source re-issuing its
own item, items outside the window, keys added again, tiny and empty items, a rebuild through
``add_many``, evictions, ``exclude_source`` queries, and additions undone by ``discard`` (which
that index did not have: it was recorded as the index's own removal of an item, the one that
re-adding a key went through). ``BANDS_GOLDEN`` covers the LSH table alone, whose answer is
ordered: which slots a query meets first decides ties in the index.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from feedhub.core import bands
from feedhub.core.bands import BandStore
from feedhub.core.dedupe import (
    DedupeSettings,
    Doc,
    Fingerprint,
    Match,
    StoryIndex,
    compare,
    fingerprint,
)
from feedhub.core.similarity import may_merge, merge_verdict

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SETTINGS = DedupeSettings()
STREAM_GOLDEN = "3449b6dfc992eb77dadd06a5bdf868761acdd462d28e970e923b6f558dd5f0b8"
BANDS_GOLDEN = "da32430dd7e956995849d2891b945f90f0e7b0fc24a91dc71108adf493222ab4"

_HAN = [chr(0x4E00 + i * 7) for i in range(900)]
_WORDS = ["".join(random.Random(i).choices("abcdefghijklmnoprstuvwy", k=5)) for i in range(600)]
_PLACES = ["兰陵县", "费县", "沂水县", "平邑县", "郯城县", "临沭县"]


@dataclass
class _Story:
    title: str
    paragraphs: list[str]
    link: str
    lang: str


def _zh(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(_HAN, k=n))


def _story(rng: random.Random, n: int) -> _Story:
    if rng.random() < 0.2:
        title = " ".join(rng.choices(_WORDS, k=rng.randint(4, 9))).capitalize()
        paragraphs = [
            " ".join(rng.choices(_WORDS, k=rng.randint(15, 60))) + f" {rng.randint(2, 999)} tons."
            for _ in range(rng.randint(1, 4))
        ]
        return _Story(title, paragraphs, f"https://en{n % 13}.example/news/{n}", "en")
    title = rng.choice(_PLACES) + _zh(rng, rng.randint(6, 18))
    paragraphs = [
        _zh(rng, rng.randint(10, 40))
        + f"{rng.randint(2, 999)}亿元，"
        + _zh(rng, rng.randint(5, 90))
        for _ in range(rng.randint(1, 5))
    ]
    return _Story(title, paragraphs, f"https://www.zh{n % 17}.example/a/{n}.html", "zh")


def _variant(rng: random.Random, base: _Story, kind: str, n: int) -> tuple[str, list[str], str]:
    """Title, paragraphs and link of one item made from ``base``."""
    title, paragraphs, link = base.title, list(base.paragraphs), f"https://r{n % 29}.example/{n}"
    if kind == "tag":
        title = "【转载】" + title if base.lang == "zh" else title + " - Wire"
    elif kind == "cut" and len(paragraphs) > 1:
        paragraphs = paragraphs[:-1]
    elif kind == "editor":
        paragraphs.append("责任编辑：" + _zh(rng, 3) if base.lang == "zh" else "Editing by Ann Lee")
    elif kind == "facts":  # the next edition of a template: other numbers
        paragraphs = [p.replace("亿元", "1亿元").replace(" tons", "7 tons") for p in paragraphs]
    elif kind == "swap":  # one word replaced in the title
        title = title.replace(title[-3:-1], _zh(rng, 2)) if base.lang == "zh" else title + " up"
    elif kind == "same-title":
        paragraphs = [_zh(rng, 60)]
    elif kind == "same-link":
        link = base.link
        if rng.random() < 0.5:
            title, paragraphs = _zh(rng, 12), [_zh(rng, 50)]  # a landing page
    elif kind == "exact":
        link = base.link if rng.random() < 0.3 else link
    return title, paragraphs, link


def _docs(count: int, seed: int) -> list[Doc]:
    rng = random.Random(seed)
    stories: list[tuple[_Story, float, str]] = []
    docs: list[Doc] = []
    kinds = ["exact", "tag", "cut", "editor", "facts", "swap", "same-title", "same-link"]
    hours = 0.0
    while len(docs) < count:
        n = len(docs)
        hours += rng.expovariate(1 / 0.06)
        roll = rng.random()
        if roll < 0.55 or not stories:
            story = _story(rng, n)
            source = f"s{rng.randrange(40)}"
            stories.append((story, hours, source))
            docs.append(_doc(f"k{n}", source, story.title, story.paragraphs, story.link, hours))
        elif roll < 0.9:
            base, at, source = rng.choice(stories[-300:])
            kind = rng.choice(kinds)
            title, paragraphs, link = _variant(rng, base, kind, n)
            when = hours if rng.random() < 0.9 else at + rng.choice((-1, 1)) * rng.uniform(60, 90)
            other = f"s{rng.randrange(40)}" if rng.random() < 0.85 else source  # a re-issue
            docs.append(_doc(f"k{n}", other, title, paragraphs, link, when))
        elif roll < 0.915:  # a burst: one story from dozens of outlets at one instant
            base, _, _ = rng.choice(stories[-50:])
            for i in range(rng.randint(20, 40)):
                link = base.link if i % 5 == 0 else f"https://b{i}.example/{n}"
                docs.append(_doc(f"k{n}b{i}", f"b{i}", base.title, base.paragraphs, link, hours))
        elif roll < 0.96:  # tiny, title-only and empty items
            title = rng.choice(("快讯", "photos", _zh(rng, 5), ""))
            text = rng.choice(("", _zh(rng, 3), "<p></p>", _zh(rng, 30)))
            link = rng.choice((None, "", "https://www.zh1.example/", f"https://t.example/{n}"))
            docs.append(Doc(f"k{n}", f"s{rng.randrange(40)}", title, text, link, _at(hours)))
        else:  # a key seen before, fingerprinted again from other text
            key = rng.choice(docs[-500:]).key
            story = _story(rng, n)
            docs.append(_doc(key, "s0", story.title, story.paragraphs, story.link, hours))
    return docs


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _doc(key: str, source: str, title: str, paragraphs: list[str], link: str, h: float) -> Doc:
    return Doc(key, source, title, "\n".join(paragraphs), link, _at(h))


def _run(index: StoryIndex, docs: list[Doc], fps: list[Fingerprint]) -> Iterator[object]:
    """What the index says for the stream, as the clusterer drives it: the first items go in
    through ``add_many`` (a rebuild), the rest one by one, evicting as time moves on, with
    some additions undone (``discard``) as after a failed transaction, and redone."""
    rebuilt = len(docs) // 4
    yield index.add_many(
        (d.key, d.key, fp, d.published) for d, fp in zip(docs[:rebuilt], fps[:rebuilt], strict=True)
    )
    order = sorted(range(rebuilt, len(docs)), key=lambda i: (docs[i].published, i))
    for step, i in enumerate(order):
        doc, fp = docs[i], fps[i]
        found = index.match(fp, doc.published)
        yield _row(found)
        if step % 7 == 0:
            yield _row(index.match(fp, doc.published, exclude_source=doc.source_id))
        story = found.story_id if found else doc.key
        index.add(doc.key, story, fp, doc.published)
        if step % 11 == 0:
            yield index.discard(doc.key), doc.key in index, len(index)
            if step % 3 == 0:
                index.add(doc.key, story, fp, doc.published)
        if step % 23 == 0:  # an item added a while ago, undone late
            yield index.discard(docs[order[step // 2]].key)
        if step % 250 == 249:
            yield index.evict_before(doc.published - timedelta(days=3.5)), len(index)
        if step % 97 == 0 and found is not None:
            yield index.story_of(found.key), found.key in index
    yield len(index), index.evict_before(_at(10_000)), len(index)


def _row(found: Match | None) -> object:
    if found is None:
        return None
    return (
        found.story_id, found.key, found.reason, found.score, found.title_similarity,
        found.text_similarity,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stream() -> tuple[list[Doc], list[Fingerprint]]:
    docs = _docs(2400, seed=20260301)
    return docs, [fingerprint(d, SETTINGS) for d in docs]


def _look_up(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the LSH table look keys up ``how``: as it does, by binary search in every segment,
    or through a directory in every segment (``read-narrow``: with most ranges too crowded to
    be read, so searched)."""
    if how == "searched":
        monkeypatch.setattr(bands, "_DIRECTORY_MIN", 2**62)
    elif how.startswith("read"):
        monkeypatch.setattr(bands, "_DIRECTORY_MIN", 1)
        monkeypatch.setattr(bands, "_READ", 2 if how == "read-narrow" else 32)


# A small LSH buffer puts the stream through many flushes, segment merges and compactions; the
# answers must not change with it (they did not before either), nor with the way keys are found.
@pytest.mark.parametrize(
    ("buffer_items", "how"), [(None, "as-is"), (40, "read-narrow")], ids=["as-is", "small-buffer"]
)
def test_matches_are_the_same_as_before_the_speed_work(
    stream: tuple[list[Doc], list[Fingerprint]],
    buffer_items: int | None,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _look_up(how, monkeypatch)
    index = StoryIndex(SETTINGS)
    if buffer_items is not None:
        index._bands = BandStore(buffer_items=buffer_items)
    rows = list(_run(index, *stream))
    matched = [r for r in rows if isinstance(r, tuple) and len(r) == 6]
    assert {r[2] for r in matched} == {"same-url", "near-duplicate"} and len(matched) > 500
    assert hashlib.sha256(repr(rows).encode()).hexdigest() == STREAM_GOLDEN


def band_store_answers() -> list[object]:
    """A seeded run of the LSH table with few distinct keys, so that most are held by many
    slots, in the buffer and in segments: additions (some with a key twice), bulk additions,
    removals (some twice), queries."""
    rng = np.random.default_rng(11)
    pool = rng.integers(0, 2**64 - 1, size=400, dtype=np.uint64, endpoint=True)
    pool[0] = 2**64 - 1
    store = BandStore(buffer_items=6)
    rows: list[object] = []
    items: dict[int, object] = {}
    slot = 0
    for step in range(1500):
        roll = rng.random()
        if roll < 0.5:
            keys = pool[rng.integers(0, pool.size, size=8)]
            if step % 50 == 0:
                keys[3] = keys[5]
            store.add(slot, keys)
            items[slot] = keys
            slot += 1
        elif roll < 0.53:
            count = int(rng.integers(1, 30))
            many = pool[rng.integers(0, pool.size, size=(count, 8))]
            store.add_many(np.arange(slot, slot + count, dtype=np.uint32), many)
            items.update(zip(range(slot, slot + count), many, strict=True))
            slot += count
        elif roll < 0.75 and items:
            victim = list(items)[int(rng.integers(0, len(items)))]
            store.remove(victim)
            if rng.random() < 0.9:
                del items[victim]
        else:
            keys = pool[rng.integers(0, pool.size, size=int(rng.integers(1, 12)))]
            rows.append(list(store.query(keys).items()))
        rows.append((len(store), store.segment_count()))
    return rows


@pytest.mark.parametrize("how", ["searched", "read", "read-narrow"])
def test_band_store_answers_in_the_same_order_as_before_the_speed_work(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _look_up(how, monkeypatch)
    rows = band_store_answers()
    assert sum(1 for r in rows if isinstance(r, list) and len(r) > 3) > 100
    assert hashlib.sha256(repr(rows).encode()).hexdigest() == BANDS_GOLDEN


def test_a_large_segment_is_read_through_its_directory_as_it_would_be_searched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    unique = rng.integers(0, 2**64 - 1, size=(20_000, 8), dtype=np.uint64, endpoint=True)
    unique[rng.random(unique.shape) < 0.002] = 2**63  # keys that hundreds of items share
    unique[::97, 2] = unique[0, 2]
    unique[-1, -1] = 2**64 - 1
    slots = np.arange(20_000, dtype=np.uint32)
    read = BandStore()
    read.add_many(slots, unique)
    segment = read._segments[0]
    assert segment.directory is not None and segment.directory.wide
    assert read.nbytes() < 12.5 * unique.size
    monkeypatch.setattr(bands, "_DIRECTORY_MIN", 2**62)
    searched = BandStore()
    searched.add_many(slots, unique)
    assert searched._segments[0].directory is None
    for slot in rng.integers(0, 20_000, size=300).tolist():
        read.remove(slot)
        searched.remove(slot)
    absent = rng.integers(0, 2**64 - 1, size=(200, 8), dtype=np.uint64, endpoint=True)
    for keys in [*unique[rng.integers(0, 20_000, size=200)], *absent, unique[-1]]:
        keys = keys.copy()
        keys[rng.random(8) < 0.4] = absent[0, 0]
        assert list(read.query(keys).items()) == list(searched.query(keys).items())


def test_merge_verdict_is_compare_for_every_candidate(
    stream: tuple[list[Doc], list[Fingerprint]],
) -> None:
    """The index's shortcut settles most pairs without ``compare``; it must never settle one
    that ``compare`` would merge, whatever the thresholds (even exactly at a pair's own
    similarity) and however the sketches were cut."""
    docs, fps = stream
    short = DedupeSettings(sketch_size=24, max_facts=8, lead_tokens=16)
    cut = [fingerprint(d, short) for d in docs[:300]]
    pool = fps[:600] + cut + [replace(fp, source_id="same") for fp in fps[600:700]]
    rng = random.Random(5)
    pairs = [(rng.choice(pool), rng.choice(pool)) for _ in range(2000)]
    # Neighbours in the stream: reposts, edits and templates of one another.
    pairs += list(zip(pool, pool[1:], strict=False)) + list(zip(pool, pool[3:], strict=False))
    cases = [(a, b, s) for a, b in pairs for s in (SETTINGS, _LAX, _TEXT_ALONE)]
    for a, b in pairs:
        found = compare(a, b, SETTINGS)
        if found.text_similarity > 0 and a.url_key != b.url_key:
            text, contained = found.text_similarity, min(1.0, found.containment)
            tight = [
                DedupeSettings(text_alone_threshold=text, same_source_threshold=text),
                DedupeSettings(text_threshold=text, title_floor=0.0, same_source_threshold=text),
                DedupeSettings(
                    containment_threshold=contained, title_threshold=0.0, text_threshold=1.0
                ),
            ]
            cases += [(a, b, s) for s in tight]
    merged = 0
    for a, b, settings in cases:
        verdict = compare(a, b, settings) if may_merge(a, b, settings) else None
        expected = verdict if verdict is not None and verdict.reason is not None else None
        assert merge_verdict(a, b, settings) == expected
        merged += expected is not None
    assert merged > 1000


_LAX = DedupeSettings(text_threshold=0.3, containment_threshold=0.5, title_threshold=0.6)
_TEXT_ALONE = DedupeSettings(text_alone_threshold=0.6, same_source_threshold=0.5, title_floor=0.0)


def test_discard_forgets_an_item_until_it_is_added_again() -> None:
    title, text = "兰陵县重大项目集中开工仪式举行", ["县委主要负责同志在仪式上表示" * 3]
    docs = [_doc(f"r{n}", f"s{n}", title, text, f"https://r{n}.example/1", n) for n in range(4)]
    fps = [fingerprint(d, SETTINGS) for d in docs]
    probe = fingerprint(_doc("p", "p", title, text, "https://p.example/", 9), SETTINGS)
    index = StoryIndex(SETTINGS)
    index.add_many([("r0", "r0", fps[0], docs[0].published)])  # in a segment of the LSH table
    for doc, fp in zip(docs[1:], fps[1:], strict=True):  # in its buffer, sharing every band
        index.add(doc.key, "r0", fp, doc.published)
    found = index.match(probe, _at(9))
    assert found is not None and found.key == "r3"
    assert index.discard("r3") and index.discard("r0")
    assert not index.discard("r3") and not index.discard("never-added")
    assert "r3" not in index and "r0" not in index and len(index) == 2
    assert index.story_of("r3") is None
    for published, nearest in ((_at(9), "r2"), (_at(0), "r1")):
        found = index.match(probe, published)
        assert found is not None and found.key == nearest
    assert index.discard("r1") and index.discard("r2")
    assert index.match(probe, _at(9)) is None and len(index) == 0
    index.add("r3", "r0", fps[3], docs[3].published)
    found = index.match(probe, _at(9))
    assert found is not None and found.key == "r3"
    # The discarded items' places in the expiry order are skipped, not counted.
    assert index.evict_before(_at(100)) == 1 and len(index) == 0


def test_discard_leaves_the_items_sharing_a_title_or_link() -> None:
    title, text, link = "费县一季度项目集中开工", ["总投资96.3亿元"], "https://x.example/1"
    a = fingerprint(_doc("a", "s1", title, text, link, 0), SETTINGS)
    b = fingerprint(_doc("b", "s2", title, text, link, 1), SETTINGS)
    index = StoryIndex(SETTINGS)
    index.add("a", "a", a, _at(0))
    index.add("b", "a", b, _at(1))
    assert index.discard("a")
    found = index.match(a, _at(0))
    assert found is not None and (found.key, found.reason) == ("b", "same-url")
    assert index.discard("b") and index.match(a, _at(0)) is None
