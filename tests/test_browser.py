"""The pages in a real browser (Debian's Chromium driven by Playwright) and over real HTTP.

Browser tests skip when /usr/bin/chromium or Playwright is missing, and fail instead when
FEEDHUB_REQUIRE_BROWSER=1 (CI sets it). Screenshots at desktop and phone widths go to
$FEEDHUB_ARTIFACTS/browser (default: a pytest temporary directory). Every request the browser
makes outside the test server is aborted and reported, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from feedhub.settings import SiteSettings
from feedhub.web.pages import Pages
from tests.support_browser import PagesApp, crawl, serve
from tests.support_portal import XSS_ID, MemoryPortal, demo_portal

SITE = SiteSettings(title="地方新闻汇", description="各地新闻源汇总", language="zh-CN")
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1366, "height": 900}},
    "phone": {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True},
}


@pytest.fixture(scope="module")
def portal() -> MemoryPortal:
    return demo_portal(120, with_xss=True)


@pytest.fixture(scope="module")
def base_url(portal: MemoryPortal) -> Iterator[str]:
    app = PagesApp(Pages(SITE, portal), lambda: {s.id for s in portal.sections()})
    with serve(app) as url:
        yield url


@dataclass
class Watch:
    """What a page did that it should not: console errors, script errors, dialogs, requests
    leaving the test server, failed responses."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.console == [], self.console
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        assert self.blocked == [], self.blocked
        assert self.failed == [], self.failed


def open_page(browser: Any, base_url: str, kind: str, **options: Any) -> tuple[Any, Any, Watch]:
    context = browser.new_context(base_url=base_url, **VIEWPORTS[kind], **options)
    watch = Watch()
    origin = base_url.rstrip("/")

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(origin + "/") or url == origin or url.startswith("data:"):
            route.continue_()
        else:
            watch.blocked.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()

    def on_console(message: Any) -> None:
        if message.type == "error":
            watch.console.append(message.text)

    def on_response(response: Any) -> None:
        if response.status >= 400:
            watch.failed.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on("response", on_response)

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return context, page, watch


def path_of(page: Any) -> str:
    parts = urlsplit(page.url)
    return unquote(parts.path) + (f"?{unquote(parts.query)}" if parts.query else "")


def no_sideways_scroll(page: Any) -> None:
    # A phone widens its layout viewport (and zooms out) to fit a too-wide page, so compare
    # with the width asked for, not with what the page reports as the window.
    wanted = page.viewport_size["width"]
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width == [wanted, wanted], f"page is {width} px wide in a {wanted} px viewport"


@pytest.mark.parametrize("kind", ["desktop", "phone"])
def test_reader_journey(browser: Any, base_url: str, artifacts: Path, kind: str) -> None:
    context, page, watch = open_page(browser, base_url, kind)
    try:
        response = page.goto("/")
        assert response.status == 200
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert page.title() == "地方新闻汇"
        assert page.locator("link[rel=alternate][type='application/rss+xml']").count() == 1
        assert page.locator("section.box h2", has_text="热门").count() == 1
        no_sideways_scroll(page)
        page.screenshot(path=artifacts / f"{kind}-1-home.png", full_page=True)

        page.locator("nav.nav a", has_text="情感").click()
        page.wait_for_url("**/section/qinggan")
        page.locator("nav.subnav a", has_text="故事").click()
        page.wait_for_url("**/section/gushi")
        crumbs = page.locator("nav.crumbs").inner_text()
        assert re.sub(r"\s+", "", crumbs) == "首页>情感>故事"
        assert page.locator("ul.cards li.card").count() > 5
        no_sideways_scroll(page)
        page.screenshot(path=artifacts / f"{kind}-2-section.png", full_page=True)

        first = page.locator("ul.cards li.card h3 a").first
        title = first.inner_text()
        first.click()
        page.wait_for_url("**/story/*")
        assert page.locator("article h1").inner_text() == title
        assert page.locator("p.meta .src").inner_text().startswith("来源：")
        assert page.locator("p.meta .src a").count() >= 1
        assert page.locator(".content p").count() >= 1
        no_sideways_scroll(page)
        page.screenshot(path=artifacts / f"{kind}-3-story.png", full_page=True)

        story_path = path_of(page)
        related = page.locator("section.related a").first
        related_title = related.inner_text()
        related.click()
        page.wait_for_url(lambda url: "/story/" in url and unquote(url).find(story_path) < 0)
        assert page.locator("article h1").inner_text() == related_title

        box = page.locator("form.search input[name=q]")
        box.fill("沂河")
        box.press("Enter")
        page.wait_for_url("**/search?q=*")
        assert path_of(page) == "/search?q=沂河"
        assert page.locator("h1").inner_text().startswith("“沂河”的搜索结果")
        marks = page.locator("ul.cards mark")
        assert marks.count() >= 1 and marks.first.inner_text() == "沂河"
        no_sideways_scroll(page)
        page.screenshot(path=artifacts / f"{kind}-4-search.png", full_page=True)
        watch.assert_clean()
    finally:
        context.close()


PWNED = "() => [window.__pwned === undefined, document.querySelectorAll('script').length]"


def assert_inert(page: Any) -> None:
    pwned_free, scripts = page.evaluate(PWNED)
    assert pwned_free, page.evaluate("() => window.__pwned")
    assert scripts == 0
    handlers = page.evaluate(
        """() => [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]
              .filter(a => a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value))
              .map(a => e.tagName + ' ' + a.name + '=' + a.value))"""
    )
    assert handlers == []


@pytest.mark.parametrize("csp", ["bypassed", "enforced"])
def test_hostile_story_stays_inert(browser: Any, base_url: str, artifacts: Path, csp: str) -> None:
    # With the CSP bypassed, only escaping and sanitizing stand between the payloads and the
    # page; with it enforced, the header is checked to be what the browser obeys.
    context, page, watch = open_page(browser, base_url, "desktop", bypass_csp=csp == "bypassed")
    try:
        response = page.goto(f"/story/{XSS_ID}")
        assert response.status == 200
        assert "script-src" not in response.headers["content-security-policy"]
        assert_inert(page)
        assert watch.dialogs == []
        assert page.locator("article h1").inner_text().startswith("<script>window.__pwned")
        for element in page.locator("article *").all():  # every mouseover payload gets a chance
            if element.is_visible():
                element.hover()
        page.locator(".content a", has_text="点我").click()
        page.locator("p.meta .src").click()
        assert_inert(page)
        page.screenshot(path=artifacts / f"xss-{csp}.png", full_page=True)
        page.goto("/search?q=" + quote("注意"))  # the hostile title, highlighted
        assert page.locator("ul.cards mark").first.inner_text() == "注意"
        assert_inert(page)
        page.goto("/")  # the hostile title is the hottest story
        assert_inert(page)
        watch.assert_clean()
        if csp == "bypassed":  # the check itself works: a payload left unescaped is caught
            page.set_content('<p>x</p><img src="data:," onerror="window.__pwned=1">')
            page.wait_for_function("() => window.__pwned === 1", timeout=5000)
            with pytest.raises(AssertionError):
                assert_inert(page)
    finally:
        context.close()


def test_every_link_resolves_over_http(base_url: str, portal: MemoryPortal) -> None:
    result = crawl(base_url)
    assert result.broken() == {}
    visited = {unquote(urlsplit(u).path) for u in result.status}
    assert {f"/story/s{i:06d}" for i in range(120)} | {f"/story/{XSS_ID}"} <= visited
    assert {f"/section/{s.id}" for s in portal.sections()} <= visited
    assert "/feeds/section/gushi.atom" in visited and "/opml.xml" in visited
    assert "/static/style.css" in visited
    assert all(urlsplit(u).hostname == "127.0.0.1" for u in result.status)


def test_etag_revalidation_over_http(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        first = client.get("/section/gushi")
        assert first.status_code == 200 and first.headers["content-encoding"] == "gzip"
        assert "<title>故事 - 地方新闻汇</title>" in first.text
        etag = first.headers["etag"]
        again = client.get("/section/gushi", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        css = client.get("/static/style.css")
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        assert client.get("/story/missing").status_code == 404


def test_missing_browser_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.support_browser as support

    monkeypatch.setattr(support, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("FEEDHUB_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium"):
        support.require_browser()
    monkeypatch.setenv("FEEDHUB_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="FEEDHUB_REQUIRE_BROWSER=1"):
        support.require_browser()
