"""The page reads (``feedhub.storage.pages``) against what the ``Storage`` protocol answers, on
SQLite and PostgreSQL: the same cards, lists, counts and search results, and the same pages.

The data is written straight into the tables (as the pipeline would have left them) so that
it can hold what is rare in a real poll but changes orderings: stories published at the same
moment, members first seen at the same moment, empty and missing summaries, bodies longer than
an excerpt's source, sources and sections no longer configured, a story without members.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from feedhub.errors import StorageError
from feedhub.models import SourceSpec
from feedhub.relate import HotBoard
from feedhub.search import Indexer
from feedhub.settings import Settings
from feedhub.storage import open_storage
from feedhub.storage.base import Storage
from feedhub.storage.engine import make_engine
from feedhub.storage.pages import (
    TEXT_CHARS,
    SqlPageReads,
    StorageReads,
    card_stories,
    card_story,
    newest_ids,
    newest_in_groups,
    page_reads,
    related_ids,
    section_story_counts,
)
from feedhub.storage.related import _HINTED_SEARCH, _has_search_indexes, by_ids, search_ids
from feedhub.storage.schema import items, stories, story_related
from feedhub.web.pages import Pages
from feedhub.web.portal_store import StoragePortal
from tests.test_storage import T0, db_url

__all__ = ["db_url"]  # fixture used here

SECTIONS = [
    {"id": "news", "title": "新闻"},
    {"id": "local", "title": "本地", "parent": "news"},
    {"id": "biz", "title": "经济", "parent": "news"},
    {"id": "deep", "title": "深度", "parent": "biz"},
    {"id": "sport", "title": "体育"},
    {"id": "empty", "title": "空栏目"},
]
FILED = ["news", "local", "biz", "deep", "sport", None, "gone"]  # gone: no longer configured
SOURCES = ["s0", "s1", "s2", "s3", "s4", "ghost"]  # ghost: no longer configured
WORDS = "沂河 招商 项目 开工 社区 足球 文化 天气 Linyi 新闻".split()


def settings() -> Settings:
    return Settings.model_validate(
        {
            "site": {"title": "测试新闻", "base_url": "https://news.example.org/"},
            "hot": {"max_age": 3650 * 86400.0, "half_life": 3650 * 86400.0},  # data: around T0
            "sections": SECTIONS,
            "sources": [
                {
                    "id": sid,
                    "name": f"来源{sid}",
                    "url": f"https://example.org/{sid}.xml",
                    "priority": 5 if sid == "s3" else 0,
                }
                for sid in SOURCES
                if sid != "ghost"
            ],
        }
    )


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(WORDS) for _ in range(n))


def fill(url: str, n_stories: int = 90, seed: int = 7) -> list[str]:
    """Stories, members and sections as described above; returns the story ids."""
    rng = random.Random(seed)
    engine = make_engine(url)
    story_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    ids: list[str] = []
    for n in range(n_stories):
        published = T0 - timedelta(hours=n // 3)  # three at a time share a moment
        story_id = f"st{rng.randrange(16**6):06x}{n:03d}"
        ids.append(story_id)
        section = rng.choice(FILED)
        members = 0 if n == 17 else rng.choice((1, 1, 2, 3))
        created = published + timedelta(minutes=5)
        for m, source in enumerate(rng.sample(SOURCES, members)):
            long_body = rng.random() < 0.3
            content = (
                "<p>" + _text(rng, 1000 if long_body else 30) + "</p>"
                if rng.random() < 0.8
                else None
            )
            item_rows.append(
                {
                    "source_id": source,
                    "entry_id": f"e{n}-{m}",
                    "link": None if rng.random() < 0.1 else f"https://example.org/{n}-{m}",
                    "title": _text(rng, 5),
                    "author": None,
                    "summary": rng.choice(
                        (None, "", f"<p>{_text(rng, 12)}</p>", f"<p>{_text(rng, 1000)}</p>")
                    ),
                    "content": content,
                    "published": published + timedelta(minutes=rng.choice((0, 0, 7))),
                    "published_given": True,
                    "content_hash": f"h{n}-{m}",
                    "first_seen": created + timedelta(minutes=rng.choice((0, 0, 9))),
                    "last_changed": created,
                    "item_key": story_id if m == 0 else f"{story_id}-{m}",
                    "story_id": story_id,
                    "section_id": rng.choice(FILED) if m or rng.random() < 0.5 else section,
                    "section_key": "k",
                    "section_at": created,
                }
            )
        story_rows.append(
            {
                "id": story_id,
                "published": published,
                "created_at": created,
                "updated_at": created,
                "member_count": max(members, 1),
                "section_id": None if rng.random() < 0.1 else section,
                "related_at": created,
            }
        )
    related_rows = []
    for story_id in ids:  # some lists name a story that is not stored (or has no members)
        picks = rng.sample([*ids, "st-unknown"], rng.choice((0, 2, 5)))
        for rank, other in enumerate(p for p in picks if p != story_id):
            related_rows.append(
                {"story_id": story_id, "rank": rank, "related_id": other, "score": 0.5}
            )
    with engine.begin() as conn:
        conn.execute(insert(stories), story_rows)
        conn.execute(insert(items), item_rows)
        conn.execute(insert(story_related), related_rows)
    engine.dispose()
    return ids


@dataclass
class Filled:
    url: str
    storage: Storage
    ids: list[str]


@pytest.fixture
def filled(db_url: str) -> Iterator[Filled]:
    store = open_storage(db_url)
    store.migrate()
    store.sync_sources([SourceSpec(sid, f"https://example.org/{sid}.xml") for sid in SOURCES], T0)
    ids = fill(db_url)
    Indexer(store).run(T0)
    yield Filled(db_url, store, ids)
    store.close()


def _reference_ids(conn: Any, section_ids: Sequence[str] | None) -> list[str]:
    stmt = select(stories.c.id).order_by(stories.c.published.desc(), stories.c.id.desc())
    if section_ids is not None:
        stmt = stmt.where(stories.c.section_id.in_(sorted(section_ids)))
    return list(conn.execute(stmt).scalars())


SECTION_SETS: list[list[str] | None] = [
    None,
    [],
    ["news"],
    ["sport"],
    ["news", "local"],
    ["biz", "deep", "local"],
    ["gone", "nowhere"],
]


def test_cards_are_the_stories_cards(filled: Filled) -> None:
    ids = [*filled.ids[::-1], "unknown", filled.ids[3]]  # any order, unknown and repeated ids
    engine = make_engine(filled.url)
    with engine.connect() as conn:
        narrow = card_stories(conn, ids)
        full = [card_story(s) for s in by_ids(conn, ids)]
    engine.dispose()
    assert narrow == full
    assert len({c.id for c in narrow}) == len(filled.ids) - 1  # the memberless story is left out
    cut = [m.text for c in narrow for m in c.members if len(m.text) == TEXT_CHARS]
    assert cut  # long bodies are cut in SQL as in Python
    assert any(not m.text for c in narrow for m in c.members)  # no summary and no content


def test_newest_lists_follow_list_stories(filled: Filled) -> None:
    engine = make_engine(filled.url)
    with engine.connect() as conn:
        for section_ids in SECTION_SETS:
            every = _reference_ids(conn, section_ids)
            for limit, offset in ((1, 0), (5, 0), (7, 3), (20, 15), (50, 0), (10, 200), (0, 0)):
                got = newest_ids(conn, section_ids, limit, offset)
                assert got == every[offset : offset + limit], (section_ids, limit, offset)
                listed = filled.storage.list_stories(
                    section_ids=section_ids, limit=limit, offset=offset
                )
                assert card_stories(conn, got) == [card_story(s) for s in listed]
        groups: dict[Any, list[str] | None] = {
            f"g{n}": group for n, group in enumerate(SECTION_SETS)
        }
        for limit in (0, 1, 4, 12):
            picked = newest_in_groups(conn, groups, limit)
            assert picked == {
                key: _reference_ids(conn, group)[:limit] for key, group in groups.items()
            }
        assert newest_in_groups(conn, {}, 5) == {}
    engine.dispose()


def test_related_follow_related_lists(filled: Filled) -> None:
    stored = filled.storage.related_lists(filled.ids)
    engine = make_engine(filled.url)
    with engine.connect() as conn:
        for story_id in filled.ids:
            ranked = [r.story_id for r in stored.get(story_id, [])]
            found = related_ids(conn, story_id)
            assert [i for i in found if i in ranked] == ranked
            assert card_stories(conn, found) == card_stories(conn, ranked)
        assert related_ids(conn, "unknown") == []
    engine.dispose()
    assert sum(len(v) for v in stored.values()) > 50


def test_counts_follow_story_counts(filled: Filled) -> None:
    engine = make_engine(filled.url)
    wanted = ["news", "local", "biz", "deep", "sport", "empty", "gone"]
    with engine.connect() as conn:
        counts = section_story_counts(conn, wanted)
        assert section_story_counts(conn, []) == {}
    engine.dispose()
    everything = filled.storage.story_counts()
    assert counts == {sid: everything.get(sid, 0) for sid in wanted}
    assert counts["empty"] == 0 and counts["sport"] > 0


@pytest.mark.parametrize("query", ["沂河", "招商 项目", "linyi", "沂", "量子", "%"])
def test_search_ids_are_search_order(filled: Filled, query: str) -> None:
    engine = make_engine(filled.url)
    with engine.connect() as conn:
        ids = search_ids(conn, query.split())
    engine.dispose()
    found, total = filled.storage.search_stories(query.split(), limit=1000)
    assert ids == [s.id for s in found] and total == len(ids)
    reads = page_reads(filled.storage)
    assert reads.search(query.split()) == ids
    assert StorageReads(filled.storage).search(query.split()) == ids


def test_page_reads_wrap_errors(tmp_path: Path) -> None:
    broken = open_storage(f"sqlite:///{tmp_path}/not-migrated.db")
    try:
        reads = page_reads(broken)
        assert isinstance(reads, SqlPageReads)
        with pytest.raises(StorageError, match="page_counts"):
            reads.counts(["news"])
        with pytest.raises(StorageError, match="page_newest"):
            reads.newest(None, 5)
    finally:
        broken.close()


def test_portal_over_page_reads_is_the_portal_over_storage(filled: Filled) -> None:
    """Everything the pages show, through the narrow reads and through the Storage protocol
    alone: the same values and the same bytes."""
    config = settings()
    board = HotBoard(filled.storage, lambda: config)
    fast = StoragePortal(lambda: config, filled.storage, board)
    plain = StoragePortal(lambda: config, filled.storage, board, StorageReads(filled.storage))
    assert isinstance(fast.reads, SqlPageReads)

    assert fast.sections() == plain.sections()
    for node in fast.sections():
        for page in (1, 2, 5):
            assert fast.section_stories(node.id, page, 7) == plain.section_stories(node.id, page, 7)
    assert fast.section_stories("nowhere", 1, 7) is None
    for section in [None, *(s["id"] for s in SECTIONS), "gone"]:
        for n in (1, 6, 10, 11, 30):
            assert fast.latest(section, n) == plain.latest(section, n), (section, n)
            assert fast.hot(section, n) == plain.hot(section, n), (section, n)
            assert [c.id for c in fast.hot(section, n)] == board.top(section, n)
    assert len(fast.hot(None, 10)) == 10
    for story_id in [*filled.ids[:30], filled.ids[17], "unknown"]:
        assert fast.story(story_id) == plain.story(story_id)
    for query in ("沂河", "招商 项目", "沂", "量子"):
        for page in (1, 2, 9):
            assert fast.search(query, page, 5) == plain.search(query, page, 5)

    paths = ["/", "/section/news", "/section/biz?page=2", "/section/empty", "/search?q=%E6%B2%82"]
    paths += [f"/story/{sid}" for sid in filled.ids[:12]]
    fast_pages, plain_pages = Pages(config.site, fast), Pages(config.site, plain)
    for target in paths:
        path, _, query = target.partition("?")
        mine, theirs = fast_pages.handle("GET", path, query), plain_pages.handle("GET", path, query)
        assert (mine.status, mine.body) == (theirs.status, theirs.body), target


def test_portal_keeps_reads_per_data_version(filled: Filled) -> None:
    config = settings()
    portal = StoragePortal(lambda: config, filled.storage)
    calls: list[str] = []
    reads = portal.reads

    class Counting:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(reads, name)

    portal.reads = Counting()  # type: ignore[assignment]
    portal.sections()
    first = [portal.latest(s["id"], 6) for s in SECTIONS]
    assert portal.latest(None, 10) and portal.latest("news", 3) == first[0][:3]
    assert calls.count("counts") == 1 and calls.count("newest_in_groups") == 1
    assert "newest" not in calls  # every section's list came from the one read
    portal.hot("sport", 5)
    read = calls.count("cards")
    assert portal.hot("sport", 5) and calls.count("cards") == read  # the cards were kept

    assert portal.search("沂河", 1, 5) and portal.search("沂河", 2, 5)
    assert calls.count("search") == 1  # the second page came from the first one's matches

    portal.forget()
    calls.clear()
    assert [portal.latest(s["id"], 6) for s in SECTIONS] == first
    portal.sections()
    assert calls.count("counts") == 1 and calls.count("newest_in_groups") == 1
    portal.search("沂河", 2, 5)
    assert calls.count("search") == 1  # forgotten with the rest


def test_search_through_the_narrow_indexes(tmp_path: Path) -> None:
    """The two narrow search indexes (SQLite, migration 0008) give the same matches in the
    same order as the plain query does without them."""
    url = f"sqlite:///{tmp_path}/search.db"
    store = open_storage(url)
    store.migrate()
    store.sync_sources([SourceSpec(sid, f"https://example.org/{sid}.xml") for sid in SOURCES], T0)
    fill(url, seed=11)
    Indexer(store).run(T0)
    queries = ["沂河", "招商 项目", "linyi", "沂", "沂 河流", "量子"]
    hinted = {q: store.search_stories(q.split(), limit=1000)[0] for q in queries}
    engine = make_engine(url)
    with engine.begin() as conn:
        assert _has_search_indexes(conn)
        explain = "EXPLAIN QUERY PLAN " + _HINTED_SEARCH.text
        plan = str(conn.exec_driver_sql(explain, {"q": '"沂河"'}).all())
        assert "ix_items_pk_story" in plan and "ix_stories_id_published" in plan
        conn.exec_driver_sql("DROP INDEX ix_items_pk_story")
        conn.exec_driver_sql("DROP INDEX ix_stories_id_published")
    engine.dispose()
    engine = make_engine(url)  # a new engine looks the indexes up again
    with engine.connect() as conn:
        assert not _has_search_indexes(conn)
        for q in queries:
            assert search_ids(conn, q.split()) == [s.id for s in hinted[q]], q
    assert len(hinted["沂河"]) > 10 and not hinted["量子"]
    engine.dispose()
    store.close()
