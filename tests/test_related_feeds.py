"""Related reading, hot and latest end to end: real feeds polled into SQLite, served by the app."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from lxml import etree

from feedhub.pipeline import poll_sources
from feedhub.settings import Settings
from feedhub.storage import open_storage
from feedhub.storage.base import Storage
from feedhub.web import create_app
from tests.support_feedserver import FeedServer, Route
from tests.test_stories import OTHER_CITY, STORY

BASE = "https://news.example.cn/"
ATOM = "{http://www.w3.org/2005/Atom}"
NOW = datetime.now(UTC).replace(microsecond=0)
SPORT = (
    "<p>{team}在{city}体育中心迎战对手，最终以{score}取胜，"
    "主教练赛后表示球员发挥出色，下一轮比赛将于下周进行。</p>"
)


def rss(items: list[tuple[str, str, str, datetime]]) -> bytes:
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title>"
        f"<link>https://news.example.cn/a/{guid}.html</link>"
        f"<description><![CDATA[{html}]]></description>"
        f"<pubDate>{format_datetime(when)}</pubDate></item>"
        for guid, title, html, when in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>https://news.example.cn/</link>{body}</channel></rss>"
    ).encode()


BIG_TITLE = "兰陵县冬季重大项目集中开工 32个项目总投资86.5亿元"
SMALL_TITLE = "郯城县冬季重大项目集中开工 21个项目总投资53.2亿元"
SPORTS = [
    ("临沂队", "临沂", "2比1"),
    ("济南队", "济南", "3比0"),
    ("青岛队", "青岛", "1比0"),
    ("潍坊队", "潍坊", "2比2"),
]


def settings_for(server: FeedServer) -> Settings:
    sources = [
        {"id": f"s{n}", "name": f"新闻网{n}", "url": server.url(f"/s{n}.xml")} for n in range(5)
    ]
    sources.append(
        {"id": "tiyu", "name": "体育频道", "url": server.url("/tiyu.xml"), "section": "tiyu"}
    )
    return Settings.model_validate(
        {
            "site": {"title": "琅琊新闻汇", "base_url": BASE},
            "fetch": {"allowlist": ["127.0.0.1"]},
            "categorize": {"fallback": "zonghe"},
            "sections": [
                {
                    "id": "jingji",
                    "title": "经济",
                    "rules": {"keywords": {"项目": 1, "投资": 1, "开工": 1}},
                },
                {"id": "tiyu", "title": "体育"},
                {"id": "zonghe", "title": "综合"},
            ],
            "sources": sources,
        }
    )


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        # The same story from four outlets (reposts add a prefix and a credit line) ...
        for n in range(4):
            title = f"【临沂】{BIG_TITLE}" if n else BIG_TITLE
            html = STORY + (f"<p>来源：新闻网{n}</p>" if n else "")
            when = NOW + timedelta(minutes=n)  # the original first: it is the primary
            s.routes[f"/s{n}.xml"] = Route(rss([(f"big-{n}", title, html, when)]))
        # ... and a story on the same subject carried by one, published at the same time.
        s.routes["/s4.xml"] = Route(rss([("small", SMALL_TITLE, OTHER_CITY, NOW)]))
        sport = [
            (
                f"sport-{i}",
                f"{team}主场{score}战胜对手",
                SPORT.format(team=team, city=city, score=score),
                NOW - timedelta(hours=i + 1),
            )
            for i, (team, city, score) in enumerate(SPORTS)
        ]
        s.routes["/tiyu.xml"] = Route(rss(sport))
        yield s


@pytest.fixture
async def env(
    tmp_path: Path, server: FeedServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Storage, Settings]]:
    settings = settings_for(server)
    storage = open_storage(f"sqlite:///{tmp_path}/r.db")
    storage.migrate()
    report = await poll_sources(settings, storage, ignore_schedule=True)
    assert report.related == 6  # every story got its list
    app = create_app(lambda: settings, storage)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, storage, settings
    storage.close()


def story_id(storage: Storage, title: str) -> str:
    return next(
        s.id
        for s in storage.list_stories(limit=50)
        if any(m.stored.item.title == title for m in s.members)
    )


async def test_a_story_never_lists_itself_or_its_own_members(env: Any) -> None:
    _, storage, _ = env
    found = storage.list_stories(limit=50)
    assert len(found) == 6
    lists = storage.related_lists([s.id for s in found])
    assert lists  # related reading exists
    for story in found:
        own = {story.id} | {m.key for m in story.members}
        assert not own & {r.story_id for r in lists.get(story.id, [])}
    big = story_id(storage, BIG_TITLE)
    small = story_id(storage, SMALL_TITLE)
    assert len(storage.get_story(big).members) == 4  # type: ignore[union-attr]
    # The two counties' project reports are each other's best match.
    assert lists[small][0].story_id == big and lists[big][0].story_id == small


async def test_hot_ranks_four_sources_above_one(env: Any) -> None:
    client, storage, _ = env
    hot = (await client.get("/feeds/hot.json")).json()
    titles = [item["title"] for item in hot["items"]]
    assert titles.index(BIG_TITLE) < titles.index(SMALL_TITLE)
    assert titles[0] == BIG_TITLE
    assert hot["feed_url"] == f"{BASE}feeds/hot.json"
    section_hot = (await client.get("/feeds/section/jingji/hot.json")).json()
    assert [i["title"] for i in section_hot["items"]] == [BIG_TITLE, SMALL_TITLE]
    assert (await client.get("/feeds/section/nosuch/hot.json")).status_code == 404
    assert (await client.get("/feeds/source/s1/hot.json")).status_code == 404
    api = (await client.get("/api/hot?section=jingji&limit=1")).json()
    assert [s["title"] for s in api["stories"]] == [BIG_TITLE]
    assert len(api["stories"][0]["sources"]) == 4


async def test_related_links_agree_in_rss_atom_and_json(env: Any) -> None:
    client, storage, _ = env
    small = story_id(storage, SMALL_TITLE)
    document = (await client.get("/feeds/all.json")).json()
    [entry] = [i for i in document["items"] if i["title"] == SMALL_TITLE]
    from_json = [r["url"] for r in entry["_feedhub"]["related"]]
    assert from_json and from_json[0] == f"{BASE}story/{story_id(storage, BIG_TITLE)}"
    assert all(u.startswith(f"{BASE}story/") and not u.endswith(small) for u in from_json)

    atom = etree.fromstring((await client.get("/feeds/all.atom")).content)
    [atom_entry] = [
        e for e in atom.iter(f"{ATOM}entry") if e.findtext(f"{ATOM}title") == SMALL_TITLE
    ]
    from_atom = [
        ln.get("href") for ln in atom_entry.iter(f"{ATOM}link") if ln.get("rel") == "related"
    ]
    assert from_atom == from_json

    rss_doc = feedparser.parse((await client.get("/feeds/all.xml")).content)
    [rss_entry] = [e for e in rss_doc.entries if e.title == SMALL_TITLE]
    box = rss_entry.description.split("相关阅读", 1)[1]
    assert re.findall(r'href="([^"]+)"', box) == from_json
    # JSON content_html carries the same list as RSS.
    assert re.findall(r'href="([^"]+)"', entry["content_html"].split("相关阅读", 1)[1]) == from_json


async def test_feeds_with_related_links_still_validate(env: Any) -> None:
    client, _, _ = env
    folder = os.environ.get("FEEDHUB_SCHEMAS")
    root = Path(__file__).resolve().parents[2]
    path = Path(folder) / "atom.rng" if folder else root / "shared" / "schemas" / "atom.rng"
    if not path.is_file():
        pytest.skip(f"Atom RELAX NG schema not found at {path}")
    schema = etree.RelaxNG(etree.parse(str(path)))
    for url in ("/feeds/all.atom", "/feeds/hot.atom", "/feeds/section/jingji.atom"):
        doc = etree.fromstring((await client.get(url)).content)
        assert schema.validate(doc), (url, schema.error_log)
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        json.loads((Path(__file__).parent / "jsonfeed-1.1.schema.json").read_text("utf-8"))
    )
    for url in ("/feeds/all.json", "/feeds/hot.json"):
        assert not list(validator.iter_errors((await client.get(url)).json())), url
    for url in ("/feeds/all.xml", "/feeds/hot.xml"):
        assert not feedparser.parse((await client.get(url)).content).bozo


async def test_json_api(env: Any) -> None:
    client, storage, _ = env
    big = story_id(storage, BIG_TITLE)
    r = await client.get(f"/api/stories/{big}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    story = r.json()
    assert story["title"] == BIG_TITLE and story["section"]["id"] == "jingji"
    assert story["page"] == f"{BASE}story/{big}"
    assert len(story["members"]) == 4 and sum(m["primary"] for m in story["members"]) == 1
    assert [r["id"] for r in story["related"]][0] == story_id(storage, SMALL_TITLE)
    assert (await client.get("/api/stories/nope")).status_code == 404

    latest = (await client.get("/api/latest?section=tiyu")).json()["stories"]
    assert [s["title"] for s in latest][:2] == ["临沂队主场2比1战胜对手", "济南队主场3比0战胜对手"]
    assert {s["section"]["id"] for s in latest} == {"tiyu"}

    found = (await client.get("/api/search", params={"q": "郯城"})).json()
    assert found["total"] == 1 and found["stories"][0]["title"] == SMALL_TITLE
    both = (await client.get("/api/search", params={"q": "重大项目 开工"})).json()
    assert both["total"] == 2
    assert (await client.get("/api/search?q=")).status_code == 400
    assert (await client.get("/api/latest?limit=0")).status_code == 400
    assert (await client.get("/api/hot?section=nosuch")).status_code == 404
    assert (await client.get("/api/nothing")).status_code == 404


async def test_pages_over_storage(env: Any) -> None:
    client, storage, _ = env
    home = await client.get("/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    assert "热门" in home.text and BIG_TITLE in home.text
    big = story_id(storage, BIG_TITLE)
    page = await client.get(f"/story/{big}")
    assert page.status_code == 200
    assert "相关阅读" in page.text and SMALL_TITLE in page.text and "新闻网3" in page.text
    assert "首页" in page.text and "经济" in page.text  # breadcrumb
    again = await client.get(f"/story/{big}", headers={"if-none-match": page.headers["etag"]})
    assert again.status_code == 304
    found = await client.get("/search", params={"q": "郯城"})
    assert found.status_code == 200 and "<mark>郯城</mark>县冬季重大项目集中开工" in found.text
    assert (await client.get("/story/nope")).status_code == 404
    assert (await client.get("/section/jingji")).status_code == 200
