"""Stories end to end: reposts across sources become one stable entry in merged feeds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from feedhub.fetch import Fetcher
from feedhub.pipeline import Poller, poll_sources, source_specs
from feedhub.publish import resolve_scope
from feedhub.settings import Settings
from feedhub.storage.base import Storage
from feedhub.stories import Clusterer
from feedhub.web.cache import render_scope
from tests.support_feedserver import FeedServer, Route

STORY = (
    "<p>11月25日上午，兰陵县2025年冬季重大项目集中开工仪式在县经济开发区举行。此次集中开工项目"
    "共32个，总投资86.5亿元，涵盖新能源、高端装备、现代农业和城市更新等领域。</p>"
    "<p>县委主要负责同志表示，要坚持项目为王，强化要素保障，推动项目早投产、早见效。"
    "据介绍，今年以来全县累计签约亿元以上项目47个，到位资金同比增长18%。</p>"
    "<p>开工仪式后，与会人员实地观摩了部分重点项目建设现场。</p>"
)
OTHER_CITY = (
    "<p>11月26日上午，郯城县2025年冬季重大项目集中开工仪式在县高新区举行。此次集中开工项目"
    "共21个，总投资53.2亿元，涵盖医药化工、木业家居、物流仓储等领域。</p>"
    "<p>县委主要负责同志表示，要坚持项目为王，强化要素保障，推动项目早投产、早见效。"
    "据介绍，今年以来全县累计签约亿元以上项目29个，到位资金同比增长11%。</p>"
    "<p>开工仪式后，与会人员实地观摩了部分重点项目建设现场。</p>"
)


def rss(items: list[dict[str, str]]) -> bytes:
    body = "".join(
        f"<item><guid>{i['guid']}</guid><title>{i['title']}</title><link>{i['link']}</link>"
        f"<description><![CDATA[{i['html']}]]></description><pubDate>{i['date']}</pubDate></item>"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<link>https://x.example.cn/</link>{body}</channel></rss>"
    ).encode()


ORIGINAL = {
    "guid": "lanling-1",
    "title": "兰陵县冬季重大项目集中开工 32个项目总投资86.5亿元",
    "link": "https://lanling.example.cn/news/1.html",
    "html": STORY,
    "date": "Tue, 25 Nov 2025 10:00:00 +0800",
}
REPOST = {
    "guid": "langya-9",
    "title": "【临沂】兰陵县冬季重大项目集中开工 32个项目总投资86.5亿元 - 琅琊新闻网",
    "link": "https://langya.example.cn/a/9.html?utm_source=feed",
    "html": STORY.replace("<p>开工仪式后，与会人员实地观摩了部分重点项目建设现场。</p>", "")
    + "<p>来源：兰陵县融媒体中心</p><p>（责任编辑：王明）</p>",
    "date": "Wed, 26 Nov 2025 09:00:00 +0800",  # a day later
}
NEGATIVE = {
    "guid": "tancheng-1",
    "title": "郯城县冬季重大项目集中开工 21个项目总投资53.2亿元",
    "link": "https://tancheng.example.cn/news/1.html",
    "html": OTHER_CITY,
    "date": "Wed, 26 Nov 2025 10:00:00 +0800",
}


def settings_for(server: FeedServer, ids: list[str], **priority: int) -> Settings:
    names = {"lanling": "兰陵县融媒体中心", "langya": "琅琊新闻网", "tancheng": "郯城新闻网"}
    return Settings.model_validate(
        {
            "fetch": {"allowlist": ["127.0.0.1"]},
            "sources": [
                {
                    "id": sid,
                    "name": names[sid],
                    "url": server.url(f"/{sid}.xml"),
                    "priority": priority.get(sid, 0),
                }
                for sid in ids
            ],
        }
    )


def poll(settings: Settings, storage: Storage) -> Any:
    return asyncio.run(poll_sources(settings, storage, ignore_schedule=True))


def merged(settings: Settings, storage: Storage) -> list[dict[str, Any]]:
    scope = resolve_scope(settings, "all")
    assert scope is not None
    body, _ = render_scope(settings, storage, scope, "json", 50)
    items: list[dict[str, Any]] = json.loads(body)["items"]
    return items


def test_a_late_repost_joins_without_a_new_entry(server: FeedServer, storage: Storage) -> None:
    server.routes["/lanling.xml"] = Route(rss([ORIGINAL]))
    server.routes["/langya.xml"] = Route(rss([]))
    settings = settings_for(server, ["lanling", "langya"])
    poll(settings, storage)
    [before] = merged(settings, storage)

    server.routes["/langya.xml"] = Route(rss([REPOST]))
    report = poll(settings, storage)
    assert report.new_items == 1 and report.clustered == 1
    [after] = merged(settings, storage)
    assert after["id"] == before["id"]  # the GUID stays as sources join
    assert after["date_published"] == before["date_published"]
    assert [s["id"] for s in after["_feedhub"]["sources"]] == ["lanling", "langya"]
    assert after["url"] == ORIGINAL["link"]
    assert "同时报道" in after["content_html"] and "琅琊新闻网" in after["content_html"]
    # each source's own feed still shows its own item
    scope = resolve_scope(settings, "source", "langya")
    assert scope is not None
    own = json.loads(render_scope(settings, storage, scope, "json", 50)[0])["items"]
    assert [i["title"] for i in own] == [REPOST["title"]]


def test_same_topic_different_story_stays_apart(server: FeedServer, storage: Storage) -> None:
    server.routes["/lanling.xml"] = Route(rss([ORIGINAL]))
    server.routes["/tancheng.xml"] = Route(rss([NEGATIVE]))
    settings = settings_for(server, ["lanling", "tancheng"])
    poll(settings, storage)
    entries = merged(settings, storage)
    assert len(entries) == 2
    assert all(len(e["_feedhub"]["sources"]) == 1 for e in entries)


def test_priority_picks_the_primary_but_keeps_the_guid(
    server: FeedServer, storage: Storage
) -> None:
    server.routes["/lanling.xml"] = Route(rss([ORIGINAL]))
    server.routes["/langya.xml"] = Route(rss([REPOST]))
    plain = settings_for(server, ["lanling", "langya"])
    poll(plain, storage)
    [by_date] = merged(plain, storage)
    assert by_date["_feedhub"]["sources"][0]["id"] == "lanling"  # earliest published
    preferred = settings_for(server, ["lanling", "langya"], langya=10)
    [by_priority] = merged(preferred, storage)
    assert by_priority["_feedhub"]["sources"][0]["id"] == "langya"
    assert by_priority["url"] == "https://langya.example.cn/a/9.html"
    assert by_priority["id"] == by_date["id"]


def test_removing_a_source_keeps_the_others_stories(server: FeedServer, storage: Storage) -> None:
    server.routes["/lanling.xml"] = Route(rss([ORIGINAL]))
    server.routes["/langya.xml"] = Route(rss([REPOST]))
    server.routes["/tancheng.xml"] = Route(rss([NEGATIVE]))
    both = settings_for(server, ["lanling", "langya", "tancheng"])
    poll(both, storage)
    before = {e["id"]: e for e in merged(both, storage)}
    fewer = settings_for(server, ["langya", "tancheng"])  # the original outlet leaves
    poll(fewer, storage)
    after = {e["id"]: e for e in merged(fewer, storage)}
    assert set(after) == set(before)  # same stories, same GUIDs
    story = next(e for e in after.values() if e["title"] != NEGATIVE["title"])
    assert [s["id"] for s in story["_feedhub"]["sources"]] == ["langya"]
    assert storage.count_items("lanling") == 1  # nothing deleted


def test_items_stored_before_clustering_are_picked_up(server: FeedServer, storage: Storage) -> None:
    """As if the process died between storing items and clustering them."""
    server.routes["/lanling.xml"] = Route(rss([ORIGINAL]))
    server.routes["/langya.xml"] = Route(rss([REPOST]))
    settings = settings_for(server, ["lanling", "langya"])

    async def store_only() -> None:
        storage.sync_sources(source_specs(settings), datetime.now(UTC))
        async with Fetcher(settings.fetch, user_agent="test") as fetcher:
            poller = Poller(settings, storage, fetcher)  # no clusterer
            await poller.poll(ignore_schedule=True)
            poller.close()

    asyncio.run(store_only())
    assert len(storage.pending_items()) == 2
    assert merged(settings, storage) == []
    assert Clusterer(storage, settings).run(datetime.now(UTC)) == 2
    [entry] = merged(settings, storage)
    assert len(entry["_feedhub"]["sources"]) == 2


def test_a_restarted_clusterer_still_matches(server: FeedServer, storage: Storage) -> None:
    """The index is rebuilt from stored fingerprints: a repost after a restart still joins."""
    server.routes["/lanling.xml"] = Route(rss([ORIGINAL]))
    server.routes["/langya.xml"] = Route(rss([]))
    settings = settings_for(server, ["lanling", "langya"])
    poll(settings, storage)  # each poll_sources call starts a fresh clusterer
    server.routes["/langya.xml"] = Route(rss([REPOST]))
    poll(settings, storage)
    [entry] = merged(settings, storage)
    assert len(entry["_feedhub"]["sources"]) == 2
