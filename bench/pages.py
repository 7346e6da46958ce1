"""Reader pages over storage: server-side render time with 100,000 stories stored.

A temporary SQLite database is filled straight through SQLAlchemy Core with what the pipeline
would have written for a busy portal (the demo config's sections and sources): stories with
their section, published time and member count, their member items (``story_id``,
``section_id`` and ``item_key`` set, Chinese titles and HTML bodies), and five related stories
each. Then each page is rendered through ``Pages.handle`` over a ``StoragePortal``, as the
service does on a page-cache miss, in two states:

- cold: every cache dropped first (the page LRU, the portal's data version and everything it
  keeps per version: section counts, newest lists, cards, search matches), and the hot ranking
  made due, so that it is recomputed in the background while the render runs: the first
  request after new data lands, once what the portal keeps is older than ``STALE_OK``;
- warm: only the page LRU dropped (the request is still rendered, but what the portal keeps
  for the data version is reused): any other page on the same data version.

Each timing is wall-clock time and the render thread's CPU time (``time.thread_time``: it
includes SQLite's work, which runs in that thread, but not the background hot refresh or other
processes), since on a shared machine the wall clock mostly measures the neighbours.

    .venv/bin/python bench/pages.py                       # 100,000 stories, 15 rounds
    .venv/bin/python bench/pages.py --stories 20000 --rounds 5 --json
    .venv/bin/python bench/pages.py --db /tmp/pages.db    # keep (and reuse) the database
    .venv/bin/python bench/pages.py --profile /tmp/prof   # cProfile of the warm and cold loops
    .venv/bin/python bench/pages.py --breakdown           # ms per render in each storage read
    .venv/bin/python bench/pages.py --sqlite-pragma mmap_size=268435456  # try an engine setting

The target (issue 7) is well under 50 ms per page, server side. Exit status: 0 ok, 1 a page did
not answer 200, 2 over target with --check-target.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.event import listen

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))

from feedhub.config import load_settings  # noqa: E402
from feedhub.models import SourceSpec  # noqa: E402
from feedhub.search import Indexer  # noqa: E402
from feedhub.settings import Settings  # noqa: E402
from feedhub.storage import open_storage  # noqa: E402
from feedhub.storage.base import Storage  # noqa: E402
from feedhub.storage.schema import items, stories, story_related  # noqa: E402
from feedhub.web.pages import Pages  # noqa: E402
from feedhub.web.portal_store import StoragePortal  # noqa: E402

CONFIG = BENCH.parent / "config" / "demo.yaml"
TARGET_MS = 50.0
SEED = 20261127
CHUNK = 5000
RELATED = 5
# Leaves and how much of the news each gets.
SECTION_WEIGHTS = {
    "yaowen": 18,
    "caijing": 10,
    "zhaoshang": 8,
    "shehui": 22,
    "tiyu": 10,
    "wenhua": 10,
    "gushi": 6,
    "zonghe": 16,
}
# Words the generated text draws from: place names and news phrasing, plus filler made of
# common characters, so that substring search behaves as on real text (most words rare).
NEWS_WORDS = (
    "临沂 兰陵 沂水 郯城 费县 平邑 莒南 蒙阴 济南 青岛 淄博 潍坊 烟台 日照 枣庄 "
    "项目 开工 投资 签约 落户 企业 园区 产业 经济 增长 同比 市场 价格 交易 银行 股市 "
    "社区 民警 消防 救援 走失 居民 学校 医院 交通 道路 公交 天气 降温 寒潮 "
    "比赛 联赛 冠军 足球 篮球 马拉松 运动员 文旅 景区 非遗 演出 博物馆 游客 "
    "记者 获悉 近日 今年 全市 全省 工作 发展 推进 建设 服务 群众 活动 举行 开展"
).split()
COMMON = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能"
    "下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量"
    "都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重"
    "新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已"
)
RARE = {"沂河": 0.004, "招商": 0.02}  # search words, and the share of items that carry each
NO_MATCH = "量子纠缠"


@dataclass(frozen=True)
class Timing:
    page: str
    state: str
    median_ms: float
    p95_ms: float
    max_ms: float
    cpu_ms: float  # median CPU time of the rendering thread
    rounds: int
    status: int
    bytes: int


# --- data ------------------------------------------------------------------------------------


def demo_settings() -> Settings:
    return load_settings(CONFIG, env={}).settings


class Text:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        fillers = ["".join(rng.choices(COMMON, k=rng.choice((2, 2, 3)))) for _ in range(3000)]
        self.words = NEWS_WORDS * 20 + fillers

    def phrase(self, n: int) -> str:
        return "".join(self.rng.choices(self.words, k=n))

    def item(self) -> tuple[str, str, str]:
        title = self.phrase(self.rng.randint(6, 12))
        summary = self.phrase(self.rng.randint(25, 40))
        paragraphs = [self.phrase(self.rng.randint(40, 70)) for _ in range(self.rng.randint(2, 4))]
        for word, share in RARE.items():
            if self.rng.random() < share:
                where = self.rng.randrange(3)
                if where == 0:
                    title = word + title
                elif where == 1:
                    summary += word
                else:
                    paragraphs[-1] += word
        content = "".join(f"<p>{p}。</p>" for p in paragraphs)
        return title, f"<p>{summary}。</p>", content


def _key(n: int, member: int) -> str:
    return hashlib.blake2b(f"{n}/{member}".encode(), digest_size=10).hexdigest()


def fill(url: str, settings: Settings, n_stories: int, days: float, now: datetime) -> None:
    """Write ``n_stories`` stories, their items and related lists, as the pipeline would."""
    storage = open_storage(url)
    storage.migrate()
    storage.sync_sources([SourceSpec(s.id, s.url) for s in settings.sources], now)
    storage.close()
    rng = random.Random(SEED)
    text = Text(rng)
    source_ids = [s.id for s in settings.sources]
    sections = list(SECTION_WEIGHTS)
    weights = list(SECTION_WEIGHTS.values())
    span = timedelta(days=days).total_seconds()
    engine = create_engine(url)
    story_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    related_rows: list[dict[str, Any]] = []
    ids: list[str] = []
    with engine.begin() as conn:

        def flush(force: bool = False) -> None:
            for table, rows in ((stories, story_rows), (items, item_rows)):
                if rows and (force or len(rows) >= CHUNK):
                    conn.execute(insert(table), rows)
                    rows.clear()

        for n in range(n_stories):
            # Oldest first, evenly spread over the period, a little jitter.
            published = now - timedelta(seconds=span * (1 - (n + rng.random()) / n_stories))
            section = rng.choices(sections, weights)[0]
            members = rng.choices((1, 2, 3, 4, 5), (75, 15, 5, 3, 2))[0]
            sources = rng.sample(source_ids, members)
            title, summary, content = text.item()
            story_id = _key(n, 0)
            ids.append(story_id)
            created = published + timedelta(minutes=rng.randint(1, 30))
            for m, source in enumerate(sources):
                seen = created + timedelta(minutes=17 * m)
                item_rows.append(
                    {
                        "source_id": source,
                        "entry_id": f"e{n}-{m}",
                        "link": f"https://news.example.cn/{source}/{n}-{m}.html",
                        "title": title if m == 0 else f"【转载】{title}",
                        "author": None,
                        "summary": summary,
                        "content": content,
                        "published": published + timedelta(minutes=11 * m),
                        "published_given": True,
                        "content_hash": _key(n, m),
                        "first_seen": seen,
                        "last_changed": seen,
                        "item_key": _key(n, m),
                        "story_id": story_id,
                        "match_reason": None if m == 0 else "near",
                        "section_id": section,
                        "section_key": "bench",
                        "section_at": seen,
                    }
                )
            story_rows.append(
                {
                    "id": story_id,
                    "published": published,
                    "created_at": created,
                    "updated_at": created + timedelta(minutes=17 * (members - 1)),
                    "member_count": members,
                    "section_id": section,
                    "related_at": created,
                }
            )
            flush()
        flush(force=True)
        for n, story_id in enumerate(ids):  # related: stories from the days around it
            picks = {rng.randint(max(0, n - 2000), min(n_stories - 1, n + 2000)) for _ in range(8)}
            picks.discard(n)
            for rank, other in enumerate(sorted(picks)[:RELATED]):
                related_rows.append(
                    {"story_id": story_id, "rank": rank, "related_id": ids[other], "score": 0.5}
                )
            if len(related_rows) >= CHUNK:
                conn.execute(insert(story_related), related_rows)
                related_rows.clear()
        if related_rows:
            conn.execute(insert(story_related), related_rows)
    engine.dispose()


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (stories, items, story_related)
        }
    engine.dispose()
    return found


# --- timing ----------------------------------------------------------------------------------


def pick_pages(storage: Storage, pages: Pages, per_page: int) -> dict[str, str]:
    """The page addresses timed: name -> path with query."""
    nodes = {n.id: n for n in pages.data.sections()}
    deep = max((n for n in nodes.values() if n.parent is None), key=lambda n: n.count)
    last = -(-deep.count // per_page)
    picked = storage.list_stories(limit=1, offset=500)[0]  # a story a few days old
    return {
        "home": "/",
        "section (top, with children)": "/section/jingji",
        "section (leaf)": "/section/shehui",
        f"section deep (page {last})": f"/section/{deep.id}?page={last}",
        "story": f"/story/{picked.id}",
        "search 沂河": "/search?q=" + quote("沂河"),
        "search 招商 page 5": "/search?q=" + quote("招商") + "&page=5",
        "search (no match)": "/search?q=" + quote(NO_MATCH),
    }


class Breakdown:
    """Wall time spent in each storage read, per render (``--breakdown``): the portal's page
    reads and the storage calls it makes itself, wrapped where the portal calls them."""

    READS = ("cards", "newest", "newest_in_groups", "related", "counts", "search")
    STORAGE = ("data_version", "get_story", "related_lists", "story_counts", "list_stories",
               "stories_by_ids", "search_stories")  # fmt: skip

    def __init__(self, portal: StoragePortal) -> None:
        self.spent: dict[str, list[float]] = defaultdict(list)
        self.renders = 0
        for name in self.READS:
            if hasattr(portal.reads, name):
                setattr(portal.reads, name, self._timed(name, getattr(portal.reads, name)))
        for name in self.STORAGE:
            timed = self._timed(f"storage.{name}", getattr(portal.storage, name))
            setattr(portal.storage, name, timed)

    def _timed(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:  # only the render's own reads (not the background hot refresh)
                if threading.current_thread() is threading.main_thread():
                    self.spent[name].append((time.perf_counter() - started) * 1000)

        return timed

    def take(self) -> dict[str, tuple[float, float]]:
        """(calls, ms) per render by read since the last take."""
        out = {
            name: (len(v) / self.renders, sum(v) / self.renders)
            for name, v in sorted(self.spent.items(), key=lambda kv: -sum(kv[1]))
        }
        self.spent.clear()
        self.renders = 0
        return out


def time_page(
    pages: Pages,
    portal: StoragePortal,
    target: str,
    state: str,
    rounds: int,
    breakdown: Breakdown | None = None,
) -> Timing:
    path, _, query = target.partition("?")
    samples = []
    cpu = []
    status = 0
    size = 0
    for _ in range(rounds):
        pages._cache.clear()  # noqa: SLF001 (a render every time: the miss is what is timed)
        if state == "cold":  # the data changed: counts, lists and cards are read again, and
            # the hot ranking is recomputed in the background while the previous one is served
            portal.forget()
            portal.hot_board.invalidate()
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = pages.handle("GET", path, query)
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
        deadline = time.monotonic() + 30  # let a background refresh finish before the next
        while portal.hot_board._refreshing and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.01)
        status, size = response.status, len(response.body)
    if breakdown is not None:
        breakdown.renders += rounds
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return Timing(
        target,
        state,
        statistics.median(samples),
        p95,
        samples[-1],
        statistics.median(cpu),
        rounds,
        status,
        size,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = demo_settings()
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "pages.db"
        url = f"sqlite:///{path}"
        fill_s = 0.0
        if not path.exists():
            started = time.perf_counter()
            fill(url, settings, args.stories, args.days, now)
            fill_s = time.perf_counter() - started
        stored = counts(url)
        storage = open_storage(url)
        if args.sqlite_pragma:  # an experiment on the engine's settings (engine.py)
            listen(storage._engine, "connect", _pragmas(args.sqlite_pragma))  # type: ignore[attr-defined]  # noqa: SLF001
        storage.migrate()
        started = time.perf_counter()
        indexed = Indexer(storage).run(now)  # search terms, as the worker makes them
        index_s = time.perf_counter() - started
        if indexed:
            print(f"indexed {indexed:,} items for search in {index_s:.1f} s", flush=True)
        try:
            portal = StoragePortal(lambda: settings, storage)
            pages = Pages(settings.site, portal)
            targets = pick_pages(storage, pages, pages.per_page)
            timings: list[Timing] = []
            spent: dict[str, dict[str, tuple[float, float]]] = {}
            breakdown = Breakdown(portal) if args.breakdown else None
            profiler = cProfile.Profile() if args.profile else None
            load = [os.getloadavg()[0]]
            for name, target in targets.items():
                pages.handle("GET", *target.partition("?")[::2])  # first touch: warm the OS cache
                for state in ("cold", "warm"):
                    if breakdown is not None:  # not the first touch's reads
                        breakdown.spent.clear()
                    if profiler is not None:
                        profiler.enable()
                    t = time_page(pages, portal, target, state, args.rounds, breakdown)
                    if profiler is not None:
                        profiler.disable()
                    timings.append(Timing(name, *_fields(t)[1:]))
                    if breakdown is not None:
                        spent[f"{name} {state}"] = breakdown.take()
            load.append(os.getloadavg()[0])
            if profiler is not None:
                profiler.dump_stats(args.profile)
        finally:
            storage.close()
    return {
        "stored": stored,
        "days": args.days,
        "fill_seconds": round(fill_s, 1),
        "target_ms": TARGET_MS,
        "load_average": [round(x, 2) for x in load],
        "timings": [t.__dict__ | {"path": targets[t.page]} for t in timings],
        "breakdown": {
            page: {name: {"calls": round(c, 2), "ms": round(ms, 2)} for name, (c, ms) in v.items()}
            for page, v in spent.items()
        },
    }


def _pragmas(pragmas: list[str]) -> Callable[[Any, Any], None]:
    def run(dbapi_connection: Any, _record: Any) -> None:
        for pragma in pragmas:
            dbapi_connection.execute(f"PRAGMA {pragma}")

    return run


def _fields(t: Timing) -> tuple[Any, ...]:
    return (
        t.page, t.state, t.median_ms, t.p95_ms, t.max_ms, t.cpu_ms, t.rounds, t.status, t.bytes
    )  # fmt: skip


def report(result: dict[str, Any]) -> str:
    s = result["stored"]
    lines = [
        f"{s['stories']:,} stories, {s['items']:,} items, {s['story_related']:,} related rows"
        f" over {result['days']:g} days"
        + (f" (filled in {result['fill_seconds']} s)" if result["fill_seconds"] else ""),
        "load average (1 min): {:.2f} before, {:.2f} after".format(*result["load_average"]),
        f"{'page':32} {'state':5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'cpu ms':>7}"
        f" {'KiB':>6}",
    ]
    for t in result["timings"]:
        lines.append(
            f"{t['page']:32} {t['state']:5} {t['median_ms']:10.1f} {t['p95_ms']:8.1f}"
            f" {t['max_ms']:8.1f} {t['cpu_ms']:7.1f} {t['bytes'] / 1024:6.1f}"
            + ("" if t["status"] == 200 else f"  status {t['status']}")
        )
        for name, spent in result["breakdown"].get(f"{t['page']} {t['state']}", {}).items():
            lines.append(f"    {name:28} {spent['calls']:5.1f} calls {spent['ms']:7.1f} ms")
    lines.append(f"target: under {result['target_ms']:g} ms (wall clock, median)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=60.0, help="period the stories span")
    parser.add_argument("--rounds", type=int, default=15, help="renders per page and state")
    parser.add_argument("--db", help="SQLite file to fill (or reuse when it exists)")
    parser.add_argument("--profile", help="write cProfile stats of the timed loops here")
    parser.add_argument("--breakdown", action="store_true", help="ms per render in each read")
    parser.add_argument(
        "--sqlite-pragma",
        action="append",
        metavar="PRAGMA",
        help="also run PRAGMA on each connection, e.g. mmap_size=268435456 (an experiment)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check-target", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 1000 or not 100 <= args.stories <= 2_000_000:
        parser.error("--rounds must be 1..1000 and --stories 100..2,000,000")
    result = run(args)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else report(result))
    if any(t["status"] != 200 for t in result["timings"]):
        return 1
    if args.check_target and any(t["p95_ms"] >= TARGET_MS for t in result["timings"]):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
