"""The demo site built for real: the bundled feeds polled into SQLite, the real app served.

The app (``feedhub.web.create_app``) runs under uvicorn on 127.0.0.1 and serves the bundled
demo feeds itself, as ``feedhub run`` on config/demo.yaml does; the pipeline polls them from
it (clustering, filing and related reading included), and then the site is checked from the
outside: every same-origin link resolves, every autodiscovered feed is a valid feed, and a
reader's journey in Chromium (home, a section, a story, a related story, a search) shows no
errors at desktop and phone widths. Screenshots go to $FEEDHUB_ARTIFACTS/site (default: a
pytest temporary directory). Browser tests skip or fail as in test_browser.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import feedparser
import httpx
import jsonschema
import pytest
from lxml import etree

from feedhub.demo import FEEDS_DIR
from feedhub.models import Story
from feedhub.pipeline import poll_sources
from feedhub.publish import section_subtree
from feedhub.settings import Settings
from feedhub.storage import open_storage
from feedhub.storage.base import Storage
from feedhub.web import create_app
from tests.support_browser import crawl, links, serve
from tests.test_browser import no_sideways_scroll, open_page, path_of
from tests.test_demo import FEEDS
from tests.test_demo import settings as demo_settings

HERE = Path(__file__).resolve().parent
JSON_SCHEMA = HERE / "jsonfeed-1.1.schema.json"
SEARCH_WORD = "沂河"
PER_PAGE = 20  # Pages' default
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/feed+json"}


@dataclass
class Site:
    base_url: str
    settings: Settings
    storage: Storage

    def get(self, path: str) -> httpx.Response:
        return httpx.get(urljoin(self.base_url, path), timeout=10)

    def stories(self) -> list[Story]:
        return self.storage.list_stories(limit=10_000)


def _settings_for(base_url: str) -> Settings:
    """The demo config, pointed at this server: its address and its copy of the demo feeds."""
    data = demo_settings().model_dump()
    data["site"]["base_url"] = base_url + "/"
    for source in data["sources"]:
        source["url"] = urljoin(base_url, urlsplit(source["url"]).path)
    return Settings.model_validate(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    storage = open_storage(f"sqlite:///{tmp_path_factory.mktemp('site')}/demo.db")
    storage.migrate()
    # The port is known only once the server listens; settings() is read per request.
    current = {"settings": demo_settings()}
    app = create_app(lambda: current["settings"], storage, demo_dir=FEEDS_DIR)
    try:
        with serve(app) as base_url:
            settings = current["settings"] = _settings_for(base_url)
            # In a thread of its own: Playwright's sync API may already run a loop in this one.
            with ThreadPoolExecutor(1) as pool:
                poll = poll_sources(settings, storage, ignore_schedule=True)
                report = pool.submit(asyncio.run, poll).result(timeout=120)
            assert {r.status for r in report.results} == {"ok"}, report.results
            assert report.new_items >= 10 * len(FEEDS)
            assert report.related > 0
            app.invalidate()
            yield Site(base_url, settings, storage)
    finally:
        storage.close()


def test_demo_site_is_built(site: Site) -> None:
    stories = site.stories()
    assert len(stories) >= 80
    assert any(len(s.members) >= 2 for s in stories)  # reposts were merged
    assert all(s.section_id for s in stories)
    related = site.storage.related_lists([s.id for s in stories])
    assert sum(1 for refs in related.values() if refs) >= len(stories) // 2


# --- links -----------------------------------------------------------------------------------


def test_every_link_resolves(site: Site) -> None:
    result = crawl(site.base_url)
    assert result.broken() == {}
    assert all(urlsplit(u).hostname == "127.0.0.1" for u in result.status)
    visited = {unquote(urlsplit(u).path) for u in result.status}
    # Every story and every section is reachable from the home page.
    assert {f"/story/{s.id}" for s in site.stories()} <= visited
    assert {f"/section/{s.id}" for s in site.settings.sections} <= visited
    assert {"/feeds/all.xml", "/feeds/all.atom", "/feeds/all.json", "/opml.xml"} <= visited
    # Paging: the largest section's last page was reached, and nothing past it.
    counts = _section_counts(site)
    biggest = max(counts, key=lambda sid: counts[sid])
    last = -(-counts[biggest] // PER_PAGE)
    assert last >= 2, counts
    assert urljoin(site.base_url, f"/section/{biggest}?page={last}") in result.status
    assert urljoin(site.base_url, f"/section/{biggest}?page={last + 1}") not in result.status


def _section_counts(site: Site) -> dict[str, int]:
    stories = site.stories()
    return {
        section.id: sum(
            1
            for s in stories
            if s.section_id in section_subtree(site.settings.sections, section.id)
        )
        for section in site.settings.sections
    }


# --- feed autodiscovery ----------------------------------------------------------------------


def alternates(html: str) -> list[tuple[str, str]]:
    """(type, href) of every ``<link rel="alternate">`` in the head."""
    doc = etree.fromstring(html.encode(), etree.HTMLParser(encoding="utf-8"))
    return [
        (link.get("type", ""), link.get("href", ""))
        for link in doc.iterfind(".//head/link")
        if "alternate" in (link.get("rel") or "").split()
    ]


def _a_story_with_related(site: Site) -> Story:
    stories = site.stories()
    related = site.storage.related_lists([s.id for s in stories])
    return next(s for s in stories if related.get(s.id) and len(s.members) >= 2)


def _pages_to_check(site: Site) -> list[str]:
    story = _a_story_with_related(site)
    return ["/", "/section/gushi", f"/section/{story.section_id}", f"/story/{story.id}"]


def test_autodiscovered_feeds_are_valid(
    site: Site, atom_schema: etree.RelaxNG, json_validator: jsonschema.protocols.Validator
) -> None:
    checked: dict[str, str] = {}
    for page in _pages_to_check(site):
        response = site.get(page)
        assert response.status_code == 200, page
        found = alternates(response.text)
        kinds = [kind for kind, _ in found]
        assert kinds.count("application/rss+xml") >= 1, (page, found)
        assert {"application/atom+xml", "application/feed+json", "text/x-opml"} <= set(kinds)
        if page.startswith("/section/"):  # the section's own feed comes first
            section_id = page.removeprefix("/section/")
            assert found[0] == ("application/rss+xml", f"/feeds/section/{section_id}.xml")
        for kind, href in found:
            url = urljoin(site.base_url + page, href)
            if url not in checked:
                check_feed(site, url, kind, atom_schema, json_validator)
                checked[url] = kind
    assert len(checked) >= 7


def check_feed(
    site: Site,
    url: str,
    kind: str,
    atom_schema: etree.RelaxNG,
    json_validator: jsonschema.protocols.Validator,
) -> None:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, url
    assert response.headers["content-type"].split(";")[0] in {kind, "application/xml"}, url
    if kind == "text/x-opml":
        doc = etree.fromstring(response.content)
        assert doc.tag == "opml"
        feeds = [o.get("xmlUrl") for o in doc.iter("outline") if o.get("xmlUrl")]
        assert feeds and all(u.startswith(site.base_url + "/") for u in feeds)
        assert all(httpx.head(u, timeout=10).status_code == 200 for u in feeds)
        return
    assert kind in FEED_TYPES, (url, kind)
    if kind == "application/feed+json":
        document = response.json()
        errors = [
            f"{list(e.absolute_path)}: {e.message}" for e in json_validator.iter_errors(document)
        ]
        assert not errors, (url, errors)
        assert document["items"], url
        return
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, (url, parsed.get("bozo_exception"))
    assert (
        parsed.version == {"application/rss+xml": "rss20", "application/atom+xml": "atom10"}[kind]
    )
    assert parsed.entries, url
    assert all(e.get("title") and e.get("id") for e in parsed.entries), url
    # Entries link related reading to the site's story pages: those must exist too.
    inside = {
        href
        for e in parsed.entries
        for href in links(e.get("summary", ""))
        if href.startswith(site.base_url + "/")
    }
    assert all(httpx.head(href, timeout=10).status_code == 200 for href in inside), url
    if kind == "application/atom+xml":
        doc = etree.fromstring(response.content)
        assert atom_schema.validate(doc), (url, atom_schema.error_log)


# --- the reader's journey in Chromium --------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Where the journey goes: a top-level section, the leaf under it, and a story on the
    leaf's first page that has related reading."""

    top: str
    leaf: str
    story_title: str
    story_id: str


def journey_route(site: Site) -> Route:
    sections = {s.id: s for s in site.settings.sections}
    related = site.storage.related_lists([s.id for s in site.stories()])
    for section in site.settings.sections:
        if section.parent is None:
            continue  # a child section: the journey goes through its parent's page
        first_page = site.storage.list_stories(section_ids={section.id}, limit=PER_PAGE)
        for story in first_page:
            if related.get(story.id):
                page = site.get(f"/story/{story.id}").text
                title = etree.fromstring(page.encode(), etree.HTMLParser()).findtext(".//h1")
                return Route(sections[section.parent].title, section.title, title, story.id)
    raise AssertionError("no child section has a story with related reading on its first page")


@pytest.mark.parametrize("kind", ["desktop", "phone"])
def test_reader_journey(browser: Any, site: Site, artifacts: Path, kind: str) -> None:
    route = journey_route(site)
    context, page, watch = open_page(browser, site.base_url, kind)
    try:
        response = page.goto("/")
        assert response.status == 200
        assert page.title() == site.settings.site.title
        assert page.locator("section.box h2", has_text="热门").count() == 1
        assert page.locator("section.box li").count() >= 10
        no_sideways_scroll(page)
        page.screenshot(path=artifacts / f"{kind}-1-home.png", full_page=True)

        page.locator("nav.nav a", has_text=route.top).click()
        page.wait_for_url("**/section/*")
        page.locator("nav.subnav a", has_text=route.leaf).click()
        page.wait_for_url("**/section/*")
        crumbs = re.sub(r"\s+", "", page.locator("nav.crumbs").inner_text())
        assert crumbs == f"首页>{route.top}>{route.leaf}"
        assert page.locator("ul.cards li.card").count() >= 1
        no_sideways_scroll(page)
        page.screenshot(path=artifacts / f"{kind}-2-section.png", full_page=True)

        page.locator("ul.cards li.card h3 a", has_text=route.story_title).first.click()
        page.wait_for_url("**/story/*")
        assert path_of(page) == f"/story/{route.story_id}"
        assert page.locator("article h1").inner_text() == route.story_title
        assert page.locator("p.meta .src").inner_text().startswith("来源：")
        assert page.locator(".content").inner_text().strip()
        no_sideways_scroll(page)
        page.screenshot(path=artifacts / f"{kind}-3-story.png", full_page=True)

        related = page.locator("section.related a").first
        related_title = related.inner_text()
        related.click()
        page.wait_for_url(lambda url: "/story/" in url and route.story_id not in unquote(url))
        assert page.locator("article h1").inner_text() == related_title
        page.screenshot(path=artifacts / f"{kind}-4-related.png", full_page=True)

        box = page.locator("form.search input[name=q]")
        box.fill(SEARCH_WORD)
        box.press("Enter")
        page.wait_for_url("**/search?q=*")
        assert path_of(page) == f"/search?q={SEARCH_WORD}"
        assert page.locator("h1").inner_text().startswith(f"“{SEARCH_WORD}”的搜索结果")
        expected = site.storage.search_stories([SEARCH_WORD], limit=PER_PAGE)[1]
        assert expected >= 1
        assert page.locator("ul.cards li.card").count() == min(expected, PER_PAGE)
        marks = page.locator("ul.cards mark")
        assert marks.count() >= 1 and marks.first.inner_text() == SEARCH_WORD
        no_sideways_scroll(page)
        page.screenshot(path=artifacts / f"{kind}-5-search.png", full_page=True)
        watch.assert_clean()
    finally:
        context.close()


def test_links_helper_sees_head_links() -> None:
    html = '<head><link rel="alternate" href="/a.xml"></head><a href="/b">b</a>'
    assert links(html) == ["/a.xml", "/b"]
    assert alternates(html) == [("", "/a.xml")]
