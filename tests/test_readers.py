"""Independent consumers read what feedhub publishes.

Source feeds with awkward Chinese titles (escaped ``&`` and ``<``, quotes, character
references, emoji, full-width punctuation, CDATA, a GB2312 document) are polled through the
real pipeline into SQLite; then ``feedhub run --role web`` serves them on 127.0.0.1 and
sfeed, newsboat and feedparser read the RSS and Atom feeds over HTTP. Every reader must see
every stored entry with its title, article link, date and GUID intact. The Atom documents
must validate against RFC 4287's RELAX NG schema and the JSON Feeds against the JSON Feed 1.1
schema kept beside these tests.
"""

from __future__ import annotations

import asyncio
import calendar
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import feedparser
import httpx
import jsonschema
import pytest
from lxml import etree

from feedhub.models import StoredItem, item_key
from feedhub.pipeline import poll_sources
from feedhub.publish import all_scopes, item_guid
from feedhub.settings import Settings
from feedhub.storage import open_storage
from tests.support_feedserver import FeedServer, Route
from tests.support_readers import (
    LiveServer,
    ReaderError,
    Reading,
    feedhub_web,
    free_port,
    newsboat_import_opml,
    newsboat_read,
    require_binaries,
    sfeed_read,
    sfeed_subscribe_opml,
)

REPO = Path(__file__).resolve().parent.parent
JSON_SCHEMA = Path(__file__).resolve().parent / "jsonfeed-1.1.schema.json"
ATOM_NS = "{http://www.w3.org/2005/Atom}"


@dataclass(frozen=True)
class Article:
    """One entry of a source feed: its XML as the publisher wrote it, and what it means.

    ``link`` is the article link as feedhub should publish it (tracking parameters dropped);
    ``published`` is None when the source gives no date (storage then uses first-seen).
    """

    source: str
    guid: str
    title_xml: str
    title: str
    link_xml: str
    link: str
    date_xml: str | None
    published: datetime | None


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


ARTICLES = (
    Article(
        "linyi", "ly-1",
        "临沂 &amp; 济南：“双城”合作 &lt;签约&gt; 仪式",
        "临沂 & 济南：“双城”合作 <签约> 仪式",
        "https://news.example.cn/linyi/1.html", "https://news.example.cn/linyi/1.html",
        "Tue, 25 Nov 2025 08:00:00 +0800", _utc("2025-11-25T00:00:00"),
    ),
    Article(
        "linyi", "ly-2",
        "市民说&quot;好&quot;，&apos;真的&apos;吗？",
        "市民说\"好\"，'真的'吗？",
        "https://news.example.cn/linyi/2.html?id=2&amp;page=1&amp;utm_source=rss",
        "https://news.example.cn/linyi/2.html?id=2&page=1",
        "Tue, 25 Nov 2025 09:30:00 +0800", _utc("2025-11-25T01:30:00"),
    ),
    Article(
        "linyi", "ly-3",
        "&#x1F389; 沂蒙山区迎来首场雪 ❄️",
        "🎉 沂蒙山区迎来首场雪 ❄️",
        "https://news.example.cn/linyi/3.html", "https://news.example.cn/linyi/3.html",
        "Wed, 26 Nov 2025 01:00:00 GMT", _utc("2025-11-26T01:00:00"),
    ),
    Article(
        "linyi", "ly-4",
        "【快讯】（更新）《临沂日报》：……——！",
        "【快讯】（更新）《临沂日报》：……——！",
        "https://news.example.cn/%E6%96%B0%E9%97%BB/4.html",
        "https://news.example.cn/%E6%96%B0%E9%97%BB/4.html",
        "Wed, 26 Nov 2025 10:00:00 +0800", _utc("2025-11-26T02:00:00"),
    ),
    Article(
        "linyi", "ly-5",
        "<![CDATA[兰山区 & 河东区 “一体化” 发展]]>",
        "兰山区 & 河东区 “一体化” 发展",
        "https://news.example.cn/linyi/5.html", "https://news.example.cn/linyi/5.html",
        "Thu, 27 Nov 2025 07:15:00 +0800", _utc("2025-11-26T23:15:00"),
    ),
    Article(
        "jinan", "jn-1",
        "济南：“泉城”夜市开张（图）",
        "济南：“泉城”夜市开张（图）",
        "https://jinan.example.cn/a/1.html", "https://jinan.example.cn/a/1.html",
        "Tue, 25 Nov 2025 07:00:00 +0800", _utc("2025-11-24T23:00:00"),
    ),
    Article(
        "jinan", "jn-2",
        "历下区 &amp; 市中区：供暖季启动，室温≥18℃",
        "历下区 & 市中区：供暖季启动，室温≥18℃",
        "https://jinan.example.cn/a/2.html", "https://jinan.example.cn/a/2.html",
        "Mon, 24 Nov 2025 20:00:00 +0800", _utc("2025-11-24T12:00:00"),
    ),
    Article(
        "zibo", "zb-1",
        "淄博烧烤·再出发",
        "淄博烧烤·再出发",
        "https://zibo.example.cn/a/1.html", "https://zibo.example.cn/a/1.html",
        "Tue, 25 Nov 2025 12:00:00", _utc("2025-11-25T04:00:00"),  # zone-less: the site's zone
    ),
    Article(
        "zibo", "zb-2",
        "周村古商城：游客突破百万",
        "周村古商城：游客突破百万",
        "https://zibo.example.cn/a/2.html", "https://zibo.example.cn/a/2.html",
        None, None,
    ),
    Article(
        "zibo", "zb-3",
        "张店区“口袋公园”开放 &#20013;&#25991;导览",
        "张店区“口袋公园”开放 中文导览",
        "https://zibo.example.cn/a/3.html", "https://zibo.example.cn/a/3.html",
        "Tue, 25 Nov 2025 18:00:00 CST", _utc("2025-11-25T10:00:00"),  # CST: China time
    ),
)  # fmt: skip

SOURCES: dict[str, dict[str, Any]] = {
    "linyi": {"name": "临沂日报", "section": "minsheng", "region": "临沂"},
    "jinan": {"name": "济南时报", "section": "jingji", "region": "济南"},
    "zibo": {"name": "淄博晚报", "section": "shehui", "region": "淄博"},
}
# (encoding of the document, Content-Type the server sends): the GB2312 one names its
# encoding only in the XML declaration, as many Chinese sites do.
ENCODINGS = {
    "linyi": ("utf-8", "application/rss+xml; charset=utf-8"),
    "jinan": ("gb2312", "application/rss+xml"),
    "zibo": ("utf-8", "text/xml; charset=UTF-8"),
}

# Feeds read by the readers: an id for test names, then the feed's path without extension.
SCOPES = {
    "all": "feeds/all",
    "section-shehui": "feeds/section/shehui",  # a parent section: covers 民生 below it
    "region-linyi": "feeds/region/临沂",  # a non-ASCII path, percent-encoded in requests
    "source-jinan": "feeds/source/jinan",  # the GB2312 source
}
READABLE = {"xml": "rss", "atom": "atom"}
# Edited after it was first stored: its Atom <updated> moves on while <published> must not,
# and readers (sfeed, newsboat, feedparser) must still date it by <published>.
EDITED = "ly-1"


def source_document(source: str, *, edited: bool = False) -> bytes:
    """The source's RSS; ``edited`` changes the body of ``EDITED`` (its date stays)."""
    encoding, _ = ENCODINGS[source]
    items = []
    for a in ARTICLES:
        if a.source != source:
            continue
        date = f"<pubDate>{a.date_xml}</pubDate>" if a.date_xml else ""
        body = "正文（更正）。" if edited and a.guid == EDITED else "正文。"
        items.append(
            f'<item><guid isPermaLink="false">{a.guid}</guid><title>{a.title_xml}</title>'
            f"<link>{a.link_xml}</link><description>&lt;p&gt;{body}&lt;/p&gt;</description>"
            f"{date}</item>"
        )
    name = SOURCES[source]["name"]
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        f"<title>{name}</title><link>https://news.example.cn/</link>"
        f"<description>{name}</description>{''.join(items)}</channel></rss>"
    )
    return doc.encode(encoding)


def scope_path(scope_id: str, ext: str) -> str:
    return f"{quote(SCOPES[scope_id])}.{ext}"


@dataclass(frozen=True)
class Site:
    server: LiveServer
    settings: Settings  # as served
    client: httpx.Client
    stored: tuple[StoredItem, ...]
    by_path: dict[str, list[Reading]]  # every published feed's path -> its entries, sorted

    def expected(self, scope_id: str) -> list[Reading]:
        return self.by_path[SCOPES[scope_id]]

    @property
    def edited_guid(self) -> str:
        link = next(a.link for a in ARTICLES if a.guid == EDITED)
        return next(reading_of(s).guid for s in self.stored if s.item.link == link)

    def url(self, scope_id: str, ext: str) -> str:
        return self.server.url(scope_path(scope_id, ext))

    def get(self, scope_id: str, ext: str) -> bytes:
        return self.fetch(self.url(scope_id, ext))

    def fetch(self, url: str) -> bytes:
        response = self.client.get(url)
        assert response.status_code == 200, (url, response.text)
        return response.content


def reading_of(stored: StoredItem) -> Reading:
    item = stored.item
    return Reading(
        title=item.title,
        link=item.link or "",
        timestamp=int(stored.published.timestamp()),
        guid=item_guid(item_key(item.source_id, item.entry_id)),
    )


def site_settings(feeds: FeedServer, port: int, work: Path) -> Settings:
    return Settings.model_validate(
        {
            "site": {"title": "琅琊新闻汇", "base_url": f"http://127.0.0.1:{port}/"},
            "storage": {"url": f"sqlite:///{work}/feedhub.db"},
            "fetch": {"allowlist": ["127.0.0.1"]},
            "sections": [
                {"id": "shehui", "title": "社会"},
                {"id": "minsheng", "title": "民生", "parent": "shehui"},
                {"id": "jingji", "title": "经济"},
            ],
            "sources": [
                {"id": sid, "url": feeds.url(f"/{sid}.xml"), **fields}
                for sid, fields in SOURCES.items()
            ],
        }
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Sources polled twice (the second time with ``EDITED`` changed), then served live."""
    work = tmp_path_factory.mktemp("readers")
    with ExitStack() as stack:
        feeds = stack.enter_context(FeedServer())
        for source, (_, content_type) in ENCODINGS.items():
            feeds.routes[f"/{source}.xml"] = Route(source_document(source), content_type)
        # The site's own address only names the published feeds' links: not stored.
        stored, by_path = _poll(site_settings(feeds, 1, work), feeds)
        client = stack.enter_context(httpx.Client(trust_env=False, timeout=10))
        for attempt in range(3):
            port = free_port()
            settings = site_settings(feeds, port, work)
            config = settings.model_dump(mode="json")
            try:
                server = stack.enter_context(feedhub_web(config, work / f"run{attempt}", port))
                break
            except RuntimeError:  # the port was taken meanwhile: try another
                if attempt == 2:
                    raise
        yield Site(server, settings, client, stored, by_path)


def _poll(
    settings: Settings, feeds: FeedServer
) -> tuple[tuple[StoredItem, ...], dict[str, list[Reading]]]:
    storage = open_storage(settings.storage.url)
    try:
        storage.migrate()
        _, content_type = ENCODINGS["linyi"]
        for edited in (False, True):
            document = source_document("linyi", edited=edited)
            feeds.routes["/linyi.xml"] = Route(document, content_type)
            report = asyncio.run(poll_sources(settings, storage, ignore_schedule=True))
            assert report.errors == 0, report.results
            changes = (report.new_items, report.updated_items)
            assert changes == ((0, 1) if edited else (len(ARTICLES), 0)), report.results
        stored = tuple(storage.list_items(limit=200))
        by_path = {}
        for scope in all_scopes(settings):
            if scope.kind == "section":  # items are filed one by one, into leaf sections
                items = [s for s in stored if s.section_id in scope.section_ids]
            else:
                items = storage.list_items(source_ids=scope.source_ids, limit=200)
            by_path[scope.path] = sorted(reading_of(s) for s in items)
    finally:
        storage.close()
    return stored, by_path


FEEDS = [(scope_id, ext) for scope_id in SCOPES for ext in READABLE]
FEED_IDS = [f"{scope_id}.{ext}" for scope_id, ext in FEEDS]


def test_stored_items_are_the_articles_as_published(site: Site) -> None:
    """The reference the readers are held to is itself right: the source articles."""
    by_link = {s.item.link: s for s in site.stored}
    assert len(site.stored) == len(ARTICLES)
    for article in ARTICLES:
        stored = by_link[article.link]
        assert (stored.item.source_id, stored.item.title) == (article.source, article.title)
        assert stored.published == (article.published or stored.first_seen)
        edited = article.guid == EDITED
        assert (stored.last_changed > stored.first_seen) == edited, article.guid
    sizes = {scope_id: len(site.expected(scope_id)) for scope_id in SCOPES}
    assert sizes == {"all": 10, "section-shehui": 8, "region-linyi": 5, "source-jinan": 2}


@pytest.fixture(scope="module")
def sfeed_readings(
    site: Site, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Reading]]:
    require_binaries("sfeed_update", "sfeed", "curl")
    names = {f"{scope_id}.{ext}": site.url(scope_id, ext) for scope_id, ext in FEEDS}
    return sfeed_read(names, tmp_path_factory.mktemp("sfeed"))


@pytest.fixture(scope="module")
def newsboat_readings(
    site: Site, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Reading]]:
    require_binaries("newsboat")
    names = {f"{scope_id}.{ext}": site.url(scope_id, ext) for scope_id, ext in FEEDS}
    return newsboat_read(names, tmp_path_factory.mktemp("newsboat"))


@pytest.mark.parametrize(("scope_id", "ext"), FEEDS, ids=FEED_IDS)
def test_sfeed_reads_every_entry(
    site: Site, sfeed_readings: dict[str, list[Reading]], scope_id: str, ext: str
) -> None:
    assert sorted(sfeed_readings[f"{scope_id}.{ext}"]) == site.expected(scope_id)


@pytest.mark.parametrize(("scope_id", "ext"), FEEDS, ids=FEED_IDS)
def test_newsboat_reads_every_entry(
    site: Site, newsboat_readings: dict[str, list[Reading]], scope_id: str, ext: str
) -> None:
    assert sorted(newsboat_readings[f"{scope_id}.{ext}"]) == site.expected(scope_id)


@pytest.mark.parametrize(("scope_id", "ext"), FEEDS, ids=FEED_IDS)
def test_feedparser_reads_every_entry(site: Site, scope_id: str, ext: str) -> None:
    parsed = feedparser.parse(site.get(scope_id, ext))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == {"xml": "rss20", "atom": "atom10"}[ext]
    readings = [
        Reading(e.title, e.link, calendar.timegm(e.published_parsed), e.id) for e in parsed.entries
    ]
    assert sorted(readings) == site.expected(scope_id)


def test_readers_subscribe_through_the_opml(site: Site, tmp_path: Path) -> None:
    """A subscriber imports /opml.xml into their reader and gets every feed, complete.

    The OPML percent-encodes non-ASCII feed URLs (``/feeds/region/%E4%B8%B4...``), which
    every reader fetches as is.
    """
    require_binaries("sfeed_update", "sfeed", "sfeed_opml_import", "curl", "newsboat")
    opml = site.fetch(site.server.url("opml.xml"))
    scopes = all_scopes(site.settings)
    assert len(scopes) == 14  # all, hot, 4 sections and their hot feeds, 3 regions, 3 sources
    # Every story here is recent, so each hot feed holds what its plain feed holds.

    by_name = sfeed_subscribe_opml(opml, tmp_path / "sfeed")
    assert {name: sorted(entries) for name, entries in by_name.items()} == {
        scope.title.replace("/", "_"): site.by_path[scope.path] for scope in scopes
    }

    urls = newsboat_import_opml(opml, tmp_path / "newsboat")
    paths = {site.server.url(quote(scope.path) + ".xml"): scope.path for scope in scopes}
    assert sorted(urls) == sorted(paths)
    read = newsboat_read({url: url for url in urls}, tmp_path / "newsboat")
    assert {url: sorted(entries) for url, entries in read.items()} == {
        url: site.by_path[path] for url, path in paths.items()
    }


def test_reader_failures_are_noticed(site: Site, tmp_path: Path) -> None:
    """A feed a reader cannot read fails these tests instead of reading as empty."""
    require_binaries("sfeed_update", "sfeed", "curl", "newsboat")
    missing = {"missing": site.server.url("feeds/section/nosuch.xml")}
    with pytest.raises(ReaderError, match="sfeed_update exited"):
        sfeed_read(missing, tmp_path / "sfeed")
    with pytest.raises(ReaderError, match="404"):
        newsboat_read(missing, tmp_path / "newsboat")


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("scope_id", SCOPES)
def test_served_atom_validates_against_rfc4287(
    site: Site, atom_schema: etree.RelaxNG, scope_id: str
) -> None:
    doc = etree.fromstring(site.get(scope_id, "atom"))
    assert atom_schema.validate(doc), atom_schema.error_log
    entries = doc.findall(f"{ATOM_NS}entry")
    assert len(entries) == len(site.expected(scope_id))
    # RFC 4287's Schematron rule that RELAX NG cannot state: an author on the feed or on
    # every entry.
    if doc.find(f"{ATOM_NS}author") is None:
        assert all(e.find(f"{ATOM_NS}author/{ATOM_NS}name") is not None for e in entries)
    # Only the edited entry has moved on, so the readers' dates above did come from
    # <published>, not <updated>.
    moved = {
        e.findtext(f"{ATOM_NS}id")
        for e in entries
        if e.findtext(f"{ATOM_NS}updated") != e.findtext(f"{ATOM_NS}published")
    }
    assert moved == {site.edited_guid} & {r.guid for r in site.expected(scope_id)}


def test_atom_schema_rejects_an_invalid_document(atom_schema: etree.RelaxNG) -> None:
    doc = etree.fromstring(b'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>')
    assert not atom_schema.validate(doc)  # no id, no updated


@pytest.mark.parametrize("scope_id", SCOPES)
def test_served_json_feed_validates_and_is_complete(
    site: Site, json_validator: jsonschema.protocols.Validator, scope_id: str
) -> None:
    document = json.loads(site.get(scope_id, "json").decode("utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in json_validator.iter_errors(document)]
    assert not errors
    readings = [
        Reading(
            item["title"],
            item["url"],
            int(datetime.fromisoformat(item["date_published"]).timestamp()),
            item["id"],
        )
        for item in document["items"]
    ]
    assert sorted(readings) == site.expected(scope_id)
