"""Published feeds read back by independent consumers and checked against the formats' schemas.

feedparser reads the RSS and Atom output, feedhub's own ingestion reads all three formats,
the Atom output is validated against RFC 4287's RELAX NG schema (read from the shared
schemas folder, skipped when it is absent) and the JSON output against a JSON Schema for
JSON Feed 1.1 kept beside this module.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import lxml.html
import pytest
from lxml import etree

from feedhub.core import render, render_opml
from feedhub.core.parse import parse_feed
from feedhub.core.render import entry_html, render_atom, render_json, render_rss
from feedhub.core.render_opml import OpmlOutline, parse_opml
from feedhub.errors import ParseError
from feedhub.models import FeedEntry, FeedMeta, RelatedLink, SourceCredit

REPO = Path(__file__).resolve().parents[1]
JSON_SCHEMA = Path(__file__).with_name("jsonfeed-1.1.schema.json")
ATOM_NS = "{http://www.w3.org/2005/Atom}"
Renderer = Callable[[FeedMeta, Sequence[FeedEntry]], bytes]
RENDERERS: dict[str, Renderer] = {"rss": render_rss, "atom": render_atom, "json": render_json}

UPDATED = datetime(2025, 11, 25, 9, 30, tzinfo=UTC)
META = FeedMeta(
    title="粤港新闻 · 全部",
    description="广东与香港的本地新闻 & 评论",
    language="zh-CN",
    home_url="https://news.example.cn/",
    self_url="https://news.example.cn/feeds/all",
    updated=UPDATED,
    ttl_minutes=20,
)
TRICKY_TITLE = '深圳 "地铁" <14号线> & 东莞 R&D'
SCRIPT_NAME = "南方<script>alert(1)</script>日报"


def make_entry(n: int, **changes: Any) -> FeedEntry:
    base = FeedEntry(
        id=f"s{n}",
        guid=f"urn:feedhub:story:{n}",
        title=f"广州塔第{n}次灯光秀 · 市民围观",
        link=f"https://www.nfnews.example.cn/content/{n}.html",
        published=datetime(2025, 11, 25, 8, 0, tzinfo=UTC) - timedelta(minutes=n),
        updated=datetime(2025, 11, 25, 8, 30, tzinfo=UTC) - timedelta(minutes=n),
        content_html=f"<p>票价 &lt; 100 元 &amp; 免费 {n} &quot;开放&quot;</p>",
        summary_html="<p>灯光秀 &amp; 烟花</p>",
        author=None,
        section_id="guangdong/guangzhou",
        section_title="广州",
        sources=(
            SourceCredit("nfnews", "南方新闻网", f"https://www.nfnews.example.cn/content/{n}.html"),
            SourceCredit("ycwb", "羊城晚报", f"https://www.ycwb.example.cn/{n}"),
            SourceCredit("gzdaily", "广州日报 & 客户端", None),
        ),
        related=(
            RelatedLink("r1", "珠江夜游 <新航线>", "https://news.example.cn/stories/r1"),
            RelatedLink("r2", "天河路 & 体育西 交通管制", "https://news.example.cn/stories/r2"),
        ),
    )
    return dataclasses.replace(base, **changes)


ENTRIES = (
    make_entry(1),
    make_entry(
        2,
        title=TRICKY_TITLE,
        content_html=None,
        author="记者 李明",
        sources=(SourceCredit("nf", SCRIPT_NAME, "https://nf.example.cn/2?a=1&b=2"),),
        related=(),
    ),
    make_entry(
        3,
        link=None,
        summary_html=None,
        section_id=None,
        section_title=None,
        sources=(SourceCredit("x", "某网", "javascript:alert(1)"),),
    ),
)


# --- support: schemas and extraction ------------------------------------------------------


def assert_atom_valid(schema: etree.RelaxNG, data: bytes) -> etree._Element:
    doc = etree.fromstring(data)
    assert schema.validate(doc), schema.error_log
    # RFC 4287's Schematron rule, which RELAX NG cannot express: an author on the feed or on
    # every entry.
    if doc.find(f"{ATOM_NS}author") is None:
        for entry in doc.iter(f"{ATOM_NS}entry"):
            assert entry.find(f"{ATOM_NS}author/{ATOM_NS}name") is not None
    return doc


def assert_json_valid(validator: jsonschema.protocols.Validator, data: bytes) -> dict[str, Any]:
    document = json.loads(data.decode("utf-8"))
    errors = [error.message for error in validator.iter_errors(document)]
    assert not errors
    return dict(document)


def entry_htmls(fmt: str, data: bytes) -> list[str]:
    """Each entry's HTML as written, read with a plain XML/JSON parser (no sanitizer)."""
    if fmt == "json":
        return [item["content_html"] for item in json.loads(data)["items"]]
    doc = etree.fromstring(data)
    if fmt == "rss":
        return [item.findtext("description") or "" for item in doc.iter("item")]
    return [entry.findtext(f"{ATOM_NS}content") or "" for entry in doc.iter(f"{ATOM_NS}entry")]


def anchors(fragment: str, xpath: str) -> list[tuple[str | None, str]]:
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    return [(a.get("href"), a.text_content()) for a in root.xpath(xpath)]


RELATED_XPATH = "//h4[.='相关阅读']/following-sibling::ul[1]/li/a"
CREDIT_XPATH = "//p[starts-with(., '来源: ')]/a"
ALSO_XPATH = "//p[starts-with(., '同时报道: ')]/a"


def rendered(fmt: str, entries: Sequence[FeedEntry] = ENTRIES) -> bytes:
    return RENDERERS[fmt](META, entries)


# --- read back by feedparser ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_feedparser_reads_back_feed_and_entries(fmt: str) -> None:
    parsed = feedparser.parse(rendered(fmt))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == ("rss20" if fmt == "rss" else "atom10")
    feed = parsed.feed
    assert feed.title == META.title
    assert feed.link == META.home_url
    self_links = [link.href for link in feed.links if link.rel == "self"]
    assert self_links == [META.self_url + (".xml" if fmt == "rss" else ".atom")]
    assert feed.updated_parsed[:6] == UPDATED.timetuple()[:6]
    assert len(parsed.entries) == len(ENTRIES)
    for got, want in zip(parsed.entries, ENTRIES, strict=True):
        assert got.title == want.title
        assert got.id == want.guid
        alternates = [link.href for link in got.get("links", []) if link.rel == "alternate"]
        assert alternates == ([want.link] if want.link else [])
        assert got.published_parsed[:6] == want.published.timetuple()[:6]
        terms = [tag.term for tag in got.get("tags", [])]
        assert terms == ([want.section_title] if want.section_title else [])
        assert got.author == (want.author or want.sources[0].name)
    if fmt == "rss":
        assert feed.subtitle == META.description
        assert feed.language == META.language
        assert feed.ttl == str(META.ttl_minutes)
    else:
        assert feed.id == META.self_url
        assert feed.subtitle == META.description
        assert feed.generator == META.generator
        assert parsed.entries[0].updated_parsed[:6] == ENTRIES[0].updated.timetuple()[:6]


def test_rss_guid_is_not_a_permalink_and_dates_carry_a_zone() -> None:
    doc = etree.fromstring(rendered("rss"))
    guids = doc.findall("channel/item/guid")
    assert [(g.text, g.get("isPermaLink")) for g in guids] == [(e.guid, "false") for e in ENTRIES]
    assert doc.findtext("channel/lastBuildDate") == "Tue, 25 Nov 2025 09:30:00 +0000"
    assert doc.findtext("channel/item/pubDate") == "Tue, 25 Nov 2025 07:59:00 +0000"


def test_atom_entry_links_keep_rel_and_title() -> None:
    doc = etree.fromstring(rendered("atom"))
    first = doc.find(f"{ATOM_NS}entry")
    assert first is not None
    links = [
        (link.get("rel"), link.get("href"), link.get("title"))
        for link in first.iter(f"{ATOM_NS}link")
    ]
    assert links == [
        ("alternate", ENTRIES[0].link, None),
        *[("related", r.url, r.title) for r in ENTRIES[0].related],
    ]


# --- read back by feedhub's own ingestion --------------------------------------------------


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_feedhub_parser_reads_back_every_format(fmt: str) -> None:
    parsed = parse_feed(
        rendered(fmt),
        {},
        url=META.self_url,
        source_id="self",
        now=UPDATED,
        default_timezone="Asia/Shanghai",
    )
    assert parsed.title == META.title
    assert parsed.link == META.home_url
    assert parsed.language == META.language
    assert [item.title for item in parsed.items] == [e.title for e in ENTRIES]
    assert [item.link for item in parsed.items] == [e.link for e in ENTRIES]
    assert [item.published for item in parsed.items] == [e.published for e in ENTRIES]
    assert [item.categories for item in parsed.items] == [
        (e.section_title,) if e.section_title else () for e in ENTRIES
    ]


def test_json_feed_fields() -> None:
    feed = json.loads(rendered("json"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == META.self_url + ".json"
    assert (feed["title"], feed["home_page_url"]) == (META.title, META.home_url)
    assert (feed["description"], feed["language"]) == (META.description, META.language)
    first, second, third = feed["items"]
    assert first["id"] == ENTRIES[0].guid and first["url"] == ENTRIES[0].link
    assert first["date_published"] == "2025-11-25T07:59:00Z"
    assert first["date_modified"] == "2025-11-25T08:29:00Z"
    assert first["summary"] == "灯光秀 & 烟花"
    assert first["tags"] == ["广州"]
    assert first["authors"] == [{"name": "南方新闻网"}]
    assert first["_feedhub"]["section"] == "guangdong/guangzhou"
    assert first["_feedhub"]["sources"] == [
        {"id": s.id, "name": s.name, "url": s.url} for s in ENTRIES[0].sources
    ]
    assert second["authors"] == [{"name": "记者 李明"}]
    assert "url" not in third and "tags" not in third and "summary" not in third
    assert third["_feedhub"]["section"] is None


# --- schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("entries", [ENTRIES, ()], ids=["entries", "empty"])
def test_atom_validates_against_rfc4287_schema(
    atom_schema: etree.RelaxNG, entries: Sequence[FeedEntry]
) -> None:
    doc = assert_atom_valid(atom_schema, render_atom(META, entries))
    assert len(doc.findall(f"{ATOM_NS}entry")) == len(entries)


def test_atom_schema_check_can_fail(atom_schema: etree.RelaxNG) -> None:
    doc = etree.fromstring(render_atom(META, ENTRIES))
    entry = doc.find(f"{ATOM_NS}entry")
    entry_id = doc.find(f"{ATOM_NS}entry/{ATOM_NS}id")
    assert entry is not None and entry_id is not None
    entry.remove(entry_id)
    assert not atom_schema.validate(doc)


@pytest.mark.parametrize("entries", [ENTRIES, ()], ids=["entries", "empty"])
def test_json_validates_against_jsonfeed_schema(
    json_validator: jsonschema.protocols.Validator, entries: Sequence[FeedEntry]
) -> None:
    feed = assert_json_valid(json_validator, render_json(META, entries))
    assert len(feed["items"]) == len(entries)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda f: f.update(version="https://jsonfeed.org/version/1"),
        lambda f: f["items"][0].pop("id"),
        lambda f: f["items"][0].update(id=7),
        lambda f: f["items"][0].pop("content_html"),
        lambda f: f["items"][0].update(date_published="2025-11-25 07:59:00"),
        lambda f: f["items"][0].update(date_modified="2025-11-25T07:59:00"),
        lambda f: f["items"][0].update(feedhub={}),
        lambda f: f["items"][0].update(authors=[{}]),
        lambda f: f.update(feed_url="/feeds/all.json"),
    ],
)
def test_json_schema_rejects_broken_feeds(
    json_validator: jsonschema.protocols.Validator, spoil: Callable[[dict[str, Any]], object]
) -> None:
    feed = json.loads(render_json(META, ENTRIES))
    spoil(feed)
    assert not json_validator.is_valid(feed)


def test_empty_rss_is_a_valid_channel() -> None:
    parsed = feedparser.parse(render_rss(META, ()))
    assert not parsed.bozo
    assert parsed.feed.title == META.title and parsed.entries == []


# --- the entry HTML: one helper, the same in every format -----------------------------------


def test_every_format_carries_the_same_entry_html() -> None:
    expected = [entry_html(e) for e in ENTRIES]
    for fmt in RENDERERS:
        assert entry_htmls(fmt, rendered(fmt)) == expected, fmt


def test_related_links_agree_across_formats() -> None:
    expected = [[(r.url, r.title) for r in e.related] for e in ENTRIES]
    for fmt in RENDERERS:
        found = [anchors(h, RELATED_XPATH) for h in entry_htmls(fmt, rendered(fmt))]
        assert found == expected, fmt
    atom = etree.fromstring(rendered("atom"))
    atom_related = [
        [
            (link.get("href"), link.get("title"))
            for link in entry.iter(f"{ATOM_NS}link")
            if link.get("rel") == "related"
        ]
        for entry in atom.iter(f"{ATOM_NS}entry")
    ]
    assert atom_related == expected
    items = json.loads(rendered("json"))["items"]
    json_related = [[(r["url"], r["title"]) for r in i["_feedhub"]["related"]] for i in items]
    assert json_related == expected
    assert [r["id"] for r in items[0]["_feedhub"]["related"]] == ["r1", "r2"]


def test_credit_and_also_reported_by() -> None:
    html = entry_html(ENTRIES[0])
    assert anchors(html, CREDIT_XPATH) == [(ENTRIES[0].sources[0].url, "南方新闻网")]
    assert anchors(html, ALSO_XPATH) == [("https://www.ycwb.example.cn/1", "羊城晚报")]
    # A source without a URL is named, not linked.
    assert (
        '同时报道: <a href="https://www.ycwb.example.cn/1">羊城晚报</a>, 广州日报 &amp; 客户端'
        in html
    )
    assert (
        html.index("<p>票价") < html.index("来源") < html.index("同时报道") < html.index("相关阅读")
    )


def test_single_source_has_no_also_line_and_summary_stands_in_for_content() -> None:
    html = entry_html(ENTRIES[1])
    assert html.startswith(ENTRIES[1].summary_html or "<missing>")
    assert "同时报道" not in html and "相关阅读" not in html


def test_entry_without_body_or_sources_renders_everywhere(
    atom_schema: etree.RelaxNG, json_validator: jsonschema.protocols.Validator
) -> None:
    bare = make_entry(
        9, title=" ", content_html=None, summary_html=None, sources=(), related=(), link=None
    )
    assert entry_html(bare) == ""
    doc = assert_atom_valid(atom_schema, render_atom(META, [bare]))
    assert doc.findtext(f"{ATOM_NS}entry/{ATOM_NS}author/{ATOM_NS}name") == META.title
    assert_json_valid(json_validator, render_json(META, [bare]))
    # Atom needs a title; an untitled entry is named by its guid when it has no link.
    assert feedparser.parse(render_rss(META, [bare])).entries[0].title == bare.guid


def test_non_http_urls_are_shown_but_not_linked() -> None:
    html = entry_html(ENTRIES[2])
    assert "javascript:" not in html
    assert anchors(html, "//a[contains(@href, 'javascript')]") == []
    assert "<p>来源: 某网</p>" in html


# --- escaping and Chinese text ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_markup_in_titles_and_names_is_escaped_and_reads_back(fmt: str) -> None:
    data = rendered(fmt)
    html = entry_htmls(fmt, data)[1]
    fragment = lxml.html.fragment_fromstring(html, create_parent="div")
    assert fragment.xpath("//script") == []
    assert anchors(html, CREDIT_XPATH) == [("https://nf.example.cn/2?a=1&b=2", SCRIPT_NAME)]
    assert "&lt;script&gt;" in html
    if fmt == "json":
        assert json.loads(data)["items"][1]["title"] == TRICKY_TITLE
    else:
        assert feedparser.parse(data).entries[1].title == TRICKY_TITLE


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_chinese_is_written_as_utf8_not_character_references(fmt: str) -> None:
    data = rendered(fmt)
    for text in (META.title, ENTRIES[0].title, "相关阅读", "同时报道", "来源", "广州"):
        assert text.encode("utf-8") in data
    assert b"&#" not in data and b"\\u" not in data


def test_rendering_is_pure_and_needs_aware_times() -> None:
    for fmt in RENDERERS:
        assert rendered(fmt) == rendered(fmt)
    shifted = make_entry(
        1, published=datetime(2025, 11, 25, 15, 59, tzinfo=timezone(timedelta(hours=8)))
    )
    assert json.loads(render_json(META, [shifted]))["items"][0]["date_published"] == (
        "2025-11-25T07:59:00Z"
    )
    naive = make_entry(1, published=datetime(2025, 11, 25, 8, 0))
    for renderer in RENDERERS.values():
        with pytest.raises(ValueError, match="naive"):
            renderer(META, [naive])


def test_characters_xml_cannot_carry_are_dropped() -> None:
    odd = make_entry(1, title="标题\x0b\x00带控制符")
    for fmt in ("rss", "atom"):
        assert feedparser.parse(RENDERERS[fmt](META, [odd])).entries[0].title == "标题带控制符"
    outline = OpmlOutline("源\x0c名", "https://a.example.cn/rss")
    opml = render_opml.render_opml("订阅\x01", [outline], date=OPML_DATE)
    assert parse_opml(opml)[0].text == "源名"


def test_public_surface() -> None:
    assert set(render.__all__) == {
        "ATOM_SUFFIX", "JSON_SUFFIX", "RSS_SUFFIX", "OpmlOutline", "author_name", "entry_html",
        "entry_title", "parse_opml", "render_atom", "render_json", "render_opml", "render_rss",
        "utc", "xml_safe",
    }  # fmt: skip
    assert set(render_opml.__all__) == {"OpmlOutline", "parse_opml", "render_opml"}
    assert render.render_opml is render_opml.render_opml


# --- OPML ---------------------------------------------------------------------------------

OPML_DATE = datetime(2025, 11, 25, 9, 30, tzinfo=UTC)
TREE = (
    OpmlOutline(
        text="广东",
        xml_url="",
        children=(
            OpmlOutline("南方新闻网", "https://nf.example.cn/rss.xml", "https://nf.example.cn/"),
            OpmlOutline(
                text="深圳",
                xml_url="",
                children=(
                    OpmlOutline(
                        "深圳新闻 <快讯> & 评论",
                        "https://sz.example.cn/feed?a=1&b=2",
                        title="深圳新闻",
                        type="atom",
                    ),
                ),
            ),
        ),
    ),
    OpmlOutline("香港電台", "https://rthk.example.hk/rss", category="香港/电台"),
)


def test_opml_round_trip_flattens_folders_into_categories() -> None:
    data = render_opml.render_opml("我的订阅", TREE, date=OPML_DATE)
    doc = etree.fromstring(data)
    assert doc.get("version") == "2.0"
    assert doc.findtext("head/title") == "我的订阅"
    assert doc.findtext("head/dateCreated") == "Tue, 25 Nov 2025 09:30:00 GMT"
    assert "广东".encode() in data
    flat = parse_opml(data)
    assert flat == [
        OpmlOutline(
            "南方新闻网", "https://nf.example.cn/rss.xml", "https://nf.example.cn/", category="广东"
        ),
        OpmlOutline(
            "深圳新闻 <快讯> & 评论",
            "https://sz.example.cn/feed?a=1&b=2",
            title="深圳新闻",
            type="atom",
            category="广东/深圳",
        ),
        OpmlOutline("香港電台", "https://rthk.example.hk/rss", category="香港/电台"),
    ]
    assert parse_opml(render_opml.render_opml("再导出", flat, date=OPML_DATE)) == flat


def test_opml_reader_takes_what_other_readers_export() -> None:
    data = """<?xml version="1.0" encoding="UTF-8"?>
<!-- exported -->
<opml version="1.0"><head><title>x</title></head><body>
  <outline title="新闻"><outline title="只有标题" xmlurl="https://a.example.cn/rss"/></outline>
  <outline text="note without a feed"/>
</body></opml>""".encode()
    assert parse_opml(data) == [
        OpmlOutline("只有标题", "https://a.example.cn/rss", title="只有标题", category="新闻")
    ]


def test_opml_in_gbk_is_decoded() -> None:
    data = (
        '<?xml version="1.0" encoding="GBK"?><opml version="1.0"><body>'
        '<outline text="本地"><outline text="东莞阳光网" xmlUrl="https://dg.example.cn/rss"/>'
        "</outline></body></opml>"
    ).encode("gbk")
    assert parse_opml(data) == [
        OpmlOutline("东莞阳光网", "https://dg.example.cn/rss", category="本地")
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not OPML"),
        (b"\x89PNG\r\n\x1a\n garbage", "not OPML"),
        (b"<opml><body><outline></body></opml>", "not OPML"),
        (b"<rss version='2.0'><channel/></rss>", "root element"),
        (b"<opml version='2.0'><head/></opml>", "no <body>"),
    ],
)
def test_parse_opml_rejects_garbage(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message) as caught:
        parse_opml(data, url="subs.opml")
    assert caught.value.url == "subs.opml"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE opml [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<opml version="2.0"><body><outline text="&lol9;" xmlUrl="https://a.example.cn/&lol9;"/>
<outline text="x">&lol9;</outline></body></opml>"""


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        b'<!DOCTYPE opml [<!ENTITY e "EXPANDED">]>'
        b'<opml><body><outline text="&e;" xmlUrl="https://a.example.cn/"/></body></opml>',
        b'<!DOCTYPE opml [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<opml><body><outline text="&e;" xmlUrl="https://a.example.cn/"/></body></opml>',
    ],
    ids=["billion-laughs", "internal-entity", "external-entity"],
)
def test_parse_opml_refuses_entities(data: bytes) -> None:
    with pytest.raises(ParseError, match="entities"):
        parse_opml(data)
