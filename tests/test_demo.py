"""The offline demo: config/demo.yaml and the feeds bundled in feedhub.demo.

The demo is what a new operator sees first, so these tests hold it to what it promises: the
config validates, every source is a bundled file, every file parses cleanly through the real
parser (encodings, dates, sanitizing), the reposts that story merging will need are there, and
a full poll through a real HTTP server stores every item.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from feedhub.config import load_settings
from feedhub.core.parse import parse_feed
from feedhub.demo import FEEDS_DIR, content_type
from feedhub.models import ParsedFeed
from feedhub.pipeline import poll_sources
from feedhub.settings import Settings
from feedhub.storage import open_storage
from tests.support_feedserver import FeedServer, Route

CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
FEEDS = sorted(p for p in FEEDS_DIR.iterdir() if p.is_file())
NOW = datetime(2025, 11, 28, tzinfo=UTC)  # every demo date is before this
WINDOW_START = datetime(2025, 11, 18, tzinfo=UTC)
GB2312_FILES = ("yimeng-shehui.rss", "lunan-qinggan.rss")
GBK_FILES = ("qilu-caijing.rss",)
JINAN_CST = "济南队备战第十轮 主帅：调整心态迎战日照队"
CJK = re.compile(r"[\u4e00-\u9fff]")


def settings() -> Settings:
    return load_settings(CONFIG, env={}).settings


@cache  # ParsedFeed is frozen; the files do not change during a run
def parse(path: Path) -> ParsedFeed:
    return parse_feed(
        path.read_bytes(),
        {"content-type": content_type(path)},
        url=f"http://127.0.0.1:8080/demo/feeds/{path.name}",
        source_id=path.stem,
        now=NOW,
        default_timezone="Asia/Shanghai",
    )


def story_key(title: str) -> str:
    """A title without the edits reposts make: a 【地名】 prefix, a `` - 来源`` suffix,
    spacing and punctuation."""
    title = re.sub(r"^【[^】]{1,8}】", "", title)
    title = re.sub(r"\s+-\s+\S+$", "", title)
    return re.sub(r"[\W_]+", "", title)


def test_demo_config_validates_and_fetches_from_loopback_only() -> None:
    s = settings()
    assert s.site.base_url == "http://127.0.0.1:8080/"
    assert s.storage.url == "sqlite:///data/demo.db"
    assert "127.0.0.1" in s.fetch.allowlist
    assert s.schedule.min_interval <= s.schedule.default_interval <= 300
    section_ids = {section.id for section in s.sections}
    assert {"yaowen", "jingji", "caijing", "shehui", "tiyu", "wenhua", "gushi", "zonghe"} <= (
        section_ids
    )
    assert {source.section for source in s.sources} <= section_ids


def test_every_source_is_a_bundled_file_and_every_file_a_source() -> None:
    s = settings()
    prefix = urljoin(s.site.base_url, "demo/feeds/")
    names = []
    for source in s.sources:
        assert source.url.startswith(prefix), source.url
        names.append(source.url.removeprefix(prefix))
    assert all((FEEDS_DIR / name).is_file() for name in names)
    assert sorted(names) == [p.name for p in FEEDS]
    assert 8 <= len(FEEDS) <= 10
    assert sum(p.stat().st_size for p in FEEDS) < 400_000


@pytest.mark.parametrize("path", FEEDS, ids=lambda p: p.name)
def test_bundled_feed_parses_cleanly(path: Path) -> None:
    feed = parse(path)
    assert feed.warnings == ()
    assert feed.language and feed.language.lower() == "zh-cn"
    assert feed.title and CJK.search(feed.title)
    assert 10 <= len(feed.items) <= 20
    for item in feed.items:
        texts = [item.title, item.summary or "", item.content or "", *item.categories]
        assert all("\ufffd" not in text for text in texts), item.title
        assert CJK.search(item.title), item.title
        assert item.published is not None, item.title
        assert WINDOW_START <= item.published < NOW, (item.title, item.published)


def test_bundled_feeds_cover_the_formats() -> None:
    versions = {parse(path).version for path in FEEDS}
    assert {"rss20", "rss10", "atom10", "json11"} <= versions


def test_gb_feeds_are_really_encoded_so() -> None:
    for name in GB2312_FILES:
        data = (FEEDS_DIR / name).read_bytes()
        assert data.startswith(b'<?xml version="1.0" encoding="gb2312"?>')
        assert CJK.search(data.decode("gb2312"))
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        assert content_type(FEEDS_DIR / name) == "application/rss+xml; charset=gb2312"
    for name in GBK_FILES:
        data = (FEEDS_DIR / name).read_bytes()
        assert data.startswith(b'<?xml version="1.0" encoding="GBK"?>')
        data.decode("gbk")
        with pytest.raises(UnicodeDecodeError):
            data.decode("gb2312")  # it uses a character only GBK has (喆)
        assert "王喆" in {item.author for item in parse(FEEDS_DIR / name).items}


def test_dates_in_chinese_styles_are_beijing_time() -> None:
    cst = {i.title: i.published for i in parse(FEEDS_DIR / "quancheng-tiyu.rss").items}
    # "Thu, 27 Nov 2025 11:20:00 CST": China Standard Time, not US Central
    assert cst[JINAN_CST] == datetime(2025, 11, 27, 3, 20, tzinfo=UTC)
    lunan = {i.title: i.published for i in parse(FEEDS_DIR / "lunan-qinggan.rss").items}
    assert lunan["父亲的旧自行车"] == datetime(2025, 11, 26, 1, 0, tzinfo=UTC)  # 年月日 09:00
    assert lunan["外婆的煎饼鏊子"] == datetime(2025, 11, 25, 2, 15, tzinfo=UTC)  # zone-less


def test_hostile_html_is_made_inert() -> None:
    raw = "".join(p.read_bytes().decode("utf-8", "ignore") for p in FEEDS)
    assert "<script>alert(1)</script>" in raw
    assert "onerror=alert(1)" in raw and 'href="javascript:alert(1)"' in raw
    hostile = [i for i in parse(FEEDS_DIR / "yishui-zaixian.rss").items if "网友爆料" in i.title]
    assert len(hostile) == 1
    assert "点击查看" in (hostile[0].summary or "") + (hostile[0].content or "")  # text kept
    for path in FEEDS:
        for item in parse(path).items:
            html = ((item.summary or "") + (item.content or "")).lower()
            assert "<script" not in html and "onerror" not in html, item.title
            assert "javascript:" not in html, item.title


def test_reposted_stories_appear_in_several_feeds() -> None:
    feeds_by_story: dict[str, set[str]] = defaultdict(set)
    for path in FEEDS:
        for item in parse(path).items:
            feeds_by_story[story_key(item.title)].add(path.name)
    reposted = {key for key, names in feeds_by_story.items() if len(names) >= 2}
    assert len(reposted) >= 4, reposted
    # hard negatives: same kind of story, different facts, different titles
    assert sum("重大项目集中开工" in key for key in feeds_by_story) >= 2
    assert sum("鲁股收盘" in key for key in feeds_by_story) >= 2


def test_story_channel_carries_an_investment_report() -> None:
    titles = [item.title for item in parse(FEEDS_DIR / "lunan-qinggan.rss").items]
    assert any("招商" in title for title in titles)


def test_demo_polls_end_to_end(tmp_path: Path) -> None:
    demo = settings()
    expected = {path.name: len(parse(path).items) for path in FEEDS}
    storage = open_storage(f"sqlite:///{tmp_path}/d.db")
    storage.migrate()
    try:
        with FeedServer() as server:
            for path in FEEDS:
                server.routes[f"/demo/feeds/{path.name}"] = Route(
                    path.read_bytes(), content_type(path)
                )
            data = demo.model_dump()
            for source in data["sources"]:
                source["url"] = server.url(urlsplit(source["url"]).path)
            local = Settings.model_validate(data)

            report = asyncio.run(poll_sources(local, storage, ignore_schedule=True))
            assert {r.source_id: r.status for r in report.results} == {
                s.id: "ok" for s in demo.sources
            }
            assert all(r.warnings == () for r in report.results)
            assert report.new_items == sum(expected.values())
            for source in demo.sources:
                name = urlsplit(source.url).path.rsplit("/", 1)[-1]
                assert storage.count_items(source.id) == expected[name]

            again = asyncio.run(poll_sources(local, storage, ignore_schedule=True))
            assert again.not_modified == len(demo.sources) and again.new_items == 0
    finally:
        storage.close()
