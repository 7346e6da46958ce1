"""The reader-facing pages, straight through ``Pages.handle`` with an in-memory PortalData."""

from __future__ import annotations

import gzip
import html as html_lib
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import quote

import jinja2
import pytest

from feedhub.errors import StorageError
from feedhub.settings import SiteSettings
from feedhub.web.page_views import breadcrumb, highlight, section_tree
from feedhub.web.pages import PageResponse, Pages, owns
from feedhub.web.portal import SectionNode, SectionTree
from tests.support_browser import crawl_handler, links
from tests.support_portal import (
    BASE_TIME,
    DEMO_SECTIONS,
    XSS_ID,
    XSS_TITLE,
    MemoryPortal,
    demo_portal,
    demo_stories,
    make_story,
)

SITE = SiteSettings(title="地方新闻汇", description="各地新闻源汇总", language="zh-CN")


@pytest.fixture(scope="module")
def portal() -> MemoryPortal:
    return demo_portal(120, with_xss=True)


@pytest.fixture
def pages(portal: MemoryPortal) -> Pages:
    return Pages(SITE, portal, per_page=20)


def get(pages: Pages, path: str, query: str = "", **headers: str) -> PageResponse:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return pages.handle("GET", path, query, raw)


def html(response: PageResponse) -> str:
    assert response.status == 200, response.body[:300]
    assert dict(response.headers)[b"content-type"] == b"text/html; charset=utf-8"
    return response.body.decode()


def text_of(fragment: str) -> str:
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip())


def feed_hrefs(page: str) -> list[str]:
    return re.findall(r'<link rel="alternate" type="[^"]+" title="[^"]*" href="([^"]+)">', page)


def test_home_shows_tree_hot_latest_and_section_boxes(pages: Pages, portal: MemoryPortal) -> None:
    page = html(get(pages, "/"))
    assert '<html lang="zh-CN">' in page
    assert "<title>地方新闻汇</title>" in page
    for section_id, title, _ in DEMO_SECTIONS:
        assert f'<a href="/section/{section_id}">{title}</a>' in page  # the tree, children too
    assert "<h2>热门</h2>" in page and "<h2>最新</h2>" in page
    assert '<li class="on"><a href="/">首页</a></li>' in page
    assert '<li class="on"><a href="/">首页</a></li>' not in html(get(pages, "/search"))
    for card in portal.latest(None, 10):
        assert f'href="/story/{card.id}"' in page
    for card in portal.hot(None, 10):
        assert f'href="/story/{card.id}"' in page
    for node in portal.sections():  # each section's newest story, in a box with a 更多 link
        newest = portal.latest(node.id, 1)[0]
        assert f'href="/story/{newest.id}"' in page
        assert f'<a class="more" href="/section/{node.id}">更多</a>' in page
    assert "<script" not in page.lower()


def test_every_page_links_its_feeds(pages: Pages) -> None:
    home = html(get(pages, "/"))
    everything = ["/feeds/all.xml", "/feeds/all.atom", "/feeds/all.json", "/opml.xml"]
    assert feed_hrefs(home) == everything
    for href, label in zip(everything, ("RSS", "Atom", "JSON", "OPML"), strict=True):
        assert re.search(rf'<a href="{re.escape(href)}" type="[^"]+">{label}</a>', home)
    section = html(get(pages, "/section/gushi"))
    own = ["/feeds/section/gushi.xml", "/feeds/section/gushi.atom", "/feeds/section/gushi.json"]
    assert feed_hrefs(section) == own + everything  # the section's own first: autodiscovery
    story = html(get(pages, "/story/s000008"))  # in 故事
    assert feed_hrefs(story) == own + everything
    types = re.findall(r'<link rel="alternate" type="([^"]+)"', section)
    assert types[:3] == ["application/rss+xml", "application/atom+xml", "application/feed+json"]
    for path, query in (("/search", "q=沂河"), ("/search", ""), ("/nope", "")):
        assert feed_hrefs(pages.handle("GET", path, query).body.decode()) == everything


def test_section_page_breadcrumb_list_and_pagination(pages: Pages, portal: MemoryPortal) -> None:
    page = html(get(pages, "/section/gushi"))
    crumbs = re.search(r'<nav class="crumbs".*?</nav>', page, re.S)
    assert crumbs is not None
    assert text_of(crumbs.group(0)) == "首页 > 情感 > 故事"
    assert 'href="/section/qinggan"' in crumbs.group(0)
    assert "<title>故事 - 地方新闻汇</title>" in page
    listing = portal.section_stories("gushi", 1, 20)
    assert listing is not None
    for card in listing.items:  # title, time, sources and first lines of each story
        assert f'<a href="/story/{card.id}">{card.title}</a>' in page
        assert card.published.astimezone().strftime("%Y") in page
        assert "来源：" + "、".join(s.name for s in card.sources) in page
        assert card.excerpt[:20] in page
    parent = html(get(pages, "/section/jingji"))
    assert "子栏目：" in parent and 'href="/section/caijing"' in parent
    assert 'href="/section/jingji?page=2"' in parent
    second = html(get(pages, "/section/jingji", "page=2"))
    assert '<span class="cur" aria-current="page">2</span>' in second
    assert '<a href="/section/jingji">上一页</a>' in second  # page 1 has one address
    full = portal.section_stories("jingji", 2, 20)
    assert full is not None and full.pages == 2
    assert all(f'href="/story/{c.id}"' in second for c in full.items)
    for bad in ("page=3", "page=0", "page=-1", "page=x", "page=１"):
        assert get(pages, "/section/jingji", bad).status == 404, bad


def test_story_page_shows_sources_content_and_boxes(pages: Pages, portal: MemoryPortal) -> None:
    story = portal.story("s000032")
    assert story is not None and len(story.card.sources) >= 1
    page = html(get(pages, "/story/s000032"))
    crumbs = re.search(r'<nav class="crumbs".*?</nav>', page, re.S)
    assert crumbs is not None and text_of(crumbs.group(0)) == "首页 > 经济 > 财经 > 正文"
    assert f"<h1>{story.card.title}</h1>" in page
    assert "2025-11-25 11:44" in page  # 03:44 UTC shown in Asia/Shanghai
    src = re.search(r'<span class="src">(.*?)</span>', page, re.S)
    assert src is not None
    for ref in story.card.sources:
        assert f'<a href="{ref.url}" rel="nofollow noopener">{ref.name}</a>' in src.group(1)
    assert story.content_html in page  # sanitized HTML, inserted as markup
    assert "<strong>" in story.content_html
    related = re.search(r"<h2>相关阅读</h2>(.*?)</section>", page, re.S)
    assert related is not None and story.related
    for card in story.related:
        assert f'href="/story/{card.id}"' in related.group(1)
    assert "<h2>热门文章</h2>" in page and "<h2>最新文章</h2>" in page
    assert 'href="/story/s000032"' not in page.split("<aside", 1)[1]  # boxes skip the story


def test_unknown_pages_are_404_html(pages: Pages) -> None:
    for path in ("/story/nope", "/section/nope", "/section/", "/story/a/b", "/x", "/static/x"):
        r = get(pages, path)
        assert r.status == 404, path
        assert "页面不存在" in r.body.decode()
        assert dict(r.headers)[b"cache-control"] == b"no-store"
    assert pages.handle("POST", "/", b"").status == 405
    assert owns("/") and owns("/search") and owns("/story/1") and not owns("/feeds/all.xml")


def test_search_finds_chinese_words_and_highlights(pages: Pages, portal: MemoryPortal) -> None:
    hits = portal.search("沂河", 1, 20)
    assert 0 < hits.total < 20
    page = html(get(pages, "/search", "q=" + quote("沂河")))
    assert "“沂河”的搜索结果" in page and f"共 {hits.total} 篇" in page
    assert "<mark>沂河</mark>" in page
    assert 'value="沂河"' in page
    assert all(f'href="/story/{c.id}"' in page for c in hits.items)
    assert '<nav class="pager"' not in page
    assert "没有找到相关文章" in html(get(pages, "/search", "q=" + quote("火星移民")))
    assert "请输入要搜索" in html(get(pages, "/search"))
    assert "请输入要搜索" in html(get(pages, "/search", "q=+++"))
    assert html(get(pages, "/search", "q=" + quote(" 沂河  "))) == page  # trimmed


def test_search_results_are_paged(pages: Pages, portal: MemoryPortal) -> None:
    q = quote("记者")
    hits = portal.search("记者", 1, 20)
    assert hits.pages > 2
    first = html(get(pages, "/search", f"q={q}"))
    assert f'href="/search?q={q}&amp;page=2"' in first
    second = html(get(pages, "/search", f"q={q}&page=2"))
    assert '<span class="cur" aria-current="page">2</span>' in second
    assert f'<a href="/search?q={q}">上一页</a>' in second
    page2 = portal.search("记者", 2, 20)
    assert all(f'href="/story/{c.id}"' in second for c in page2.items)
    assert get(pages, "/search", f"q={q}&page={hits.pages + 1}").status == 404
    assert get(pages, "/search", "page=2").status == 404  # no query, no second page


def test_search_query_is_escaped_everywhere(pages: Pages) -> None:
    q = '"><script>alert(1)</script>'
    page = html(get(pages, "/search", "q=" + quote(q)))
    assert "<script" not in page
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page


def test_highlight_escapes_around_matches() -> None:
    assert highlight("a<b>&amp b", "b") == "a&lt;<mark>b</mark>&gt;&amp;amp <mark>b</mark>"
    assert highlight("AbC", "b") == "A<mark>b</mark>C"
    assert highlight("x&y", "amp") == "x&amp;y"  # never matches inside an entity it made
    assert highlight("<i>", "") == "&lt;i&gt;"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def parsed_tags(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def test_hostile_story_renders_inert(pages: Pages) -> None:
    page = html(get(pages, f"/story/{XSS_ID}"))
    for tag, attrs in parsed_tags(page):
        assert tag not in ("script", "iframe", "svg", "object", "embed", "form", "style") or (
            tag == "form" and ("action", "/search") in attrs
        ), tag
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src", "action"):
                assert (value or "").startswith(("/", "https://", "http://", "data:")), value
    assert "&lt;script&gt;window.__pwned=&#34;title&#34;" in page  # shown as text
    assert "<p>正文<b>加粗</b></p>" in page  # the sanitized markup kept
    assert 'href="javascript' not in page.lower()
    home = html(get(pages, "/"))  # the hot list carries the hostile title too
    assert "<script" not in home and XSS_TITLE not in home


def test_etag_304_and_render_cache(pages: Pages, portal: MemoryPortal) -> None:
    first = get(pages, "/section/gushi")
    etag = dict(first.headers)[b"etag"].decode()
    assert dict(first.headers)[b"cache-control"] == b"public, max-age=60"
    assert b"script-src" not in dict(first.headers)[b"content-security-policy"]
    rendered = pages.renders
    again = get(pages, "/section/gushi")
    assert again.body == first.body and pages.renders == rendered  # from the render cache
    assert get(pages, "/section/gushi", "page=1").status == 200 and pages.renders == rendered
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        not_modified = get(pages, "/section/gushi", if_none_match=header)
        assert not_modified.status == 304 and not_modified.body == b"", header
        assert dict(not_modified.headers)[b"etag"] == etag.encode()
    assert get(pages, "/section/gushi", if_none_match='"other"').status == 200
    assert get(pages, "/section/qinggan", if_none_match=etag).status == 200  # per page
    head = pages.handle("HEAD", "/section/gushi", b"")
    assert head.body == b"" and dict(head.headers)[b"content-length"] == b"%d" % len(first.body)


def test_gzip_is_its_own_representation(pages: Pages) -> None:
    plain = get(pages, "/story/s000005")
    packed = get(pages, "/story/s000005", accept_encoding="br, gzip;q=0.8")
    headers = dict(packed.headers)
    assert headers[b"content-encoding"] == b"gzip" and headers[b"vary"] == b"Accept-Encoding"
    assert gzip.decompress(packed.body) == plain.body
    assert headers[b"content-length"] == b"%d" % len(packed.body)
    etag, gz_etag = dict(plain.headers)[b"etag"], headers[b"etag"]
    assert gz_etag == etag[:-1] + b'-gz"'
    rendered = pages.renders
    assert get(pages, "/story/s000005", accept_encoding="gzip").body == packed.body
    assert pages.renders == rendered
    again = get(pages, "/story/s000005", accept_encoding="gzip", if_none_match=gz_etag.decode())
    assert again.status == 304
    assert b"content-encoding" not in dict(get(pages, "/", accept_encoding="gzip;q=0").headers)


def test_etag_follows_data_version_and_site() -> None:
    data = demo_portal(30)
    site = SITE
    pages = Pages(lambda: site, data)
    etag = dict(get(pages, "/").headers)[b"etag"].decode()
    data.version = "v2"
    changed = get(pages, "/", if_none_match=etag)
    assert changed.status == 200
    etag2 = dict(changed.headers)[b"etag"].decode()
    assert etag2 != etag
    site = SiteSettings(title="新标题")  # a config reload
    renamed = get(pages, "/", if_none_match=etag2)
    assert renamed.status == 200 and "<title>新标题</title>" in renamed.body.decode()


def test_no_template_files_are_read_per_request(
    monkeypatch: pytest.MonkeyPatch, portal: MemoryPortal
) -> None:
    pages = Pages(SITE, portal, cache_size=0)
    get(pages, "/")

    def refuse(*args: object) -> None:
        raise AssertionError("template loaded during a request")

    monkeypatch.setattr(jinja2.FileSystemLoader, "get_source", refuse)
    for path in ("/", "/section/gushi", "/story/s000001", "/search", "/nope"):
        assert get(pages, path).body
    assert pages.renders >= 5


def test_stylesheet_is_served_with_etag(pages: Pages) -> None:
    page = html(get(pages, "/"))
    href = re.search(r'<link rel="stylesheet" href="([^"]+)">', page)
    assert href is not None and href.group(1).startswith("/static/style.css?v=")
    css = get(pages, "/static/style.css")
    headers = dict(css.headers)
    assert css.status == 200 and headers[b"content-type"] == b"text/css; charset=utf-8"
    assert b"@media (max-width:760px)" in css.body and b"@import" not in css.body
    assert href.group(1).endswith(headers[b"etag"].strip(b'"').decode())
    assert get(pages, "/static/style.css", if_none_match=headers[b"etag"].decode()).status == 304


def test_language_and_timezone_come_from_settings(portal: MemoryPortal) -> None:
    taiwan = Pages(SiteSettings(title="t", language="zh-TW"), portal)
    page = html(get(taiwan, "/story/s000000"))
    assert '<html lang="zh-TW">' in page and "2025-11-25 08:00" in page
    utc = Pages(SiteSettings(title="t", language="zh-CN", timezone="UTC"), portal)
    assert "2025-11-25 00:00" in html(get(utc, "/story/s000000"))


def test_storage_failure_is_503() -> None:
    class Broken(MemoryPortal):
        def data_version(self) -> str:
            raise StorageError("database is down")

    pages = Pages(SITE, Broken(DEMO_SECTIONS, []))
    r = get(pages, "/")
    assert r.status == 503 and "服务暂不可用" in r.body.decode()


def test_chinese_section_ids_are_linked_encoded() -> None:
    sections = (("要闻", "要闻", None), ("本地", "本地", "要闻"))
    stories = [make_story("a1", "标题", "本地", BASE_TIME, [("s", "源", "https://x.example.cn/")])]
    pages = Pages(SITE, MemoryPortal(sections, stories))
    home = html(get(pages, "/"))
    assert f'href="/section/{quote("本地")}"' in home
    assert "/feeds/section/" not in home
    page = html(get(pages, "/section/本地"))  # ASGI hands the path decoded
    assert f'href="/feeds/section/{quote("本地")}.xml"' in page
    assert text_of(re.search(r'<nav class="crumbs".*?</nav>', page, re.S).group(0)) == (  # type: ignore[union-attr]
        "首页 > 要闻 > 本地"
    )


def test_tree_and_breadcrumb_survive_bad_parents() -> None:
    nodes = [
        SectionNode("a", "A", None, 1),
        SectionNode("b", "B", "a", 1),
        SectionNode("c", "C", "gone", 1),  # unknown parent: shown at the top
        SectionNode("x", "X", "y", 0),  # a loop
        SectionNode("y", "Y", "x", 0),
    ]
    tree = section_tree(nodes)
    assert [t.node.id for t in tree] == ["a", "c"]
    assert [t.node.id for t in tree[0].children] == ["b"]
    assert [n.id for n in breadcrumb(nodes, "b")] == ["a", "b"]
    assert [n.id for n in breadcrumb(nodes, "x")] == ["y", "x"]
    assert breadcrumb(nodes, "nope") == []


def test_every_link_resolves(portal: MemoryPortal) -> None:
    pages = Pages(SITE, portal)
    stubs = ["/opml.xml"] + [
        f"/feeds/{scope}.{ext}"
        for scope in ["all"] + [f"section/{s.id}" for s in portal.sections()]
        for ext in ("xml", "atom", "json")
    ]
    result = crawl_handler(pages, stubs)
    assert result.broken() == {}
    visited = {u.removeprefix("http://pages.test") for u in result.status}
    assert {f"/story/s{i:06d}" for i in range(120)} <= visited  # every story is reachable
    assert {f"/section/{s[0]}" for s in DEMO_SECTIONS} <= visited
    assert "/section/yaowen?page=2" not in visited  # 12 stories: one page, no pager


def test_links_helper_sees_every_kind() -> None:
    found = links('<a href="/a"></a><link href="/b"><img src="/c"><form action="/d"></form>')
    assert found == ["/a", "/b", "/c", "/d"]


def _timed(pages: Pages, path: str, query: str, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = pages.handle("GET", path, query)
        samples.append(time.perf_counter() - started)
        assert response.status == 200
    return statistics.median(samples)


class _Memo:
    """Answers each PortalData call from a memo after its first time, so that the timing
    below measures rendering, not the fake data."""

    def __init__(self, inner: MemoryPortal) -> None:
        self.inner = inner
        self.memo: dict[tuple[str, tuple[object, ...]], object] = {}

    def __getattr__(self, name: str) -> object:
        method = getattr(self.inner, name)

        def call(*args: object) -> object:
            key = (name, args)
            if key not in self.memo:
                self.memo[key] = method(*args)
            return self.memo[key]

        return call


class _Uncounted(MemoryPortal):
    """A portal that can give its sections without counting them (``SectionTree``)."""

    def __init__(self, inner: MemoryPortal) -> None:
        self.__dict__.update(inner.__dict__)
        self.counted = 0

    def sections(self) -> Sequence[SectionNode]:
        self.counted += 1
        return super().sections()

    def section_tree(self) -> Sequence[SectionNode]:
        return [replace(node, count=-1) for node in super().sections()]


def test_only_pages_that_show_counts_ask_for_them(portal: MemoryPortal) -> None:
    uncounted = _Uncounted(portal)
    assert isinstance(uncounted, SectionTree) and not isinstance(portal, SectionTree)
    plain, lean = Pages(SITE, portal), Pages(SITE, uncounted)
    story_id = portal.latest(None, 1)[0].id
    targets = [
        ("/section/jingji", ""),
        ("/section/shehui", "page=2"),
        (f"/story/{story_id}", ""),
        ("/search", "q=" + quote("沂河")),
        ("/search", ""),
        ("/nowhere", ""),
    ]
    for path, query in targets:
        mine, theirs = get(lean, path, query), get(plain, path, query)
        assert (mine.status, mine.body) == (theirs.status, theirs.body), path
    assert uncounted.counted == 0
    assert get(lean, "/").body == get(plain, "/").body and uncounted.counted == 1


@pytest.mark.slow
def test_pages_render_fast_with_100k_stories() -> None:
    stories = demo_stories(100_000)
    data = MemoryPortal(DEMO_SECTIONS, stories)
    pages = Pages(SITE, _Memo(data), cache_size=0)  # type: ignore[arg-type]
    targets: Sequence[tuple[str, str]] = (
        ("/", ""),
        ("/section/jingji", ""),
        ("/section/gushi", "page=300"),
        ("/story/s099990", ""),
        ("/search", "q=" + quote("沂河")),
    )
    for path, query in targets:
        median = _timed(pages, path, query, rounds=30)
        assert median < 0.05, (path, median)
    assert stories[-1].page.card.published - BASE_TIME == timedelta(minutes=7 * 99_999)
