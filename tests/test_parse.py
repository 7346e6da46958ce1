"""parse_feed on small fixture feeds: every format, every encoding Chinese feeds use, the
item fields, feed-level fields, and the line between an ill-formed feed and no feed at all."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedhub.core.parse import parse_feed
from feedhub.errors import ParseError
from feedhub.models import Item, ParsedFeed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2025, 11, 26, tzinfo=UTC)
FEED_URL = "https://feeds.example.cn/feed.xml"
GB_TITLE = "北京今日降温 陶喆演唱会门票开售"  # 喆 is GBK, not GB2312
BIG5_TITLE = "臺北今日降溫 陶喆演唱會門票開賣"


def parse(
    source: str | bytes,
    headers: Mapping[str, str] | None = None,
    *,
    encoding: str | None = None,
    timezone: str = "Asia/Shanghai",
) -> ParsedFeed:
    content = (FIXTURES / source).read_bytes() if isinstance(source, str) else source
    return parse_feed(
        content,
        headers or {},
        url=FEED_URL,
        source_id="src",
        now=NOW,
        default_timezone=timezone,
        encoding=encoding,
    )


def by_id(feed: ParsedFeed) -> dict[str, Item]:
    return {item.entry_id: item for item in feed.items}


def rss(items: str, channel: str = "<title>t</title>") -> bytes:
    doc = f'<?xml version="1.0"?><rss version="2.0"><channel>{channel}{items}</channel></rss>'
    return doc.encode()


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "count", "first_title"),
    [
        ("rss091.xml", "rss091n", 2, "第一条"),
        ("rss10.rdf", "rss10", 1, "RDF 条目"),
        ("rss20.xml", "rss20", 5, "国务院 发布 新规 & 解读"),
        ("atom03.xml", "atom03", 1, "舊格式條目"),
        ("atom10.xml", "atom10", 2, "強調 標題"),
        ("jsonfeed11.json", "json11", 2, "JSON 条目 & 标题"),
    ],
)
def test_every_format(name: str, version: str, count: int, first_title: str) -> None:
    feed = parse(name)
    assert feed.version == version
    assert len(feed.items) == count
    assert feed.items[0].title == first_title
    assert all(item.source_id == "src" for item in feed.items)
    assert not any("well-formed" in warning for warning in feed.warnings)


def test_rss10_dc_fields() -> None:
    item = parse("rss10.rdf").items[0]
    assert item.entry_id == "http://rdf.example.cn/1.html"
    assert item.author == "王作者"
    assert item.categories == ("科技",)
    assert item.published == datetime(2025, 11, 25, 0, tzinfo=UTC)  # dc:date, +08:00


def test_atom03_issued_and_modified() -> None:
    item = parse("atom03.xml").items[0]
    assert item.published == datetime(2005, 11, 25, 0, tzinfo=UTC)
    assert item.updated == datetime(2005, 11, 25, 10, tzinfo=UTC)
    assert item.content == "<p>舊內容</p>"


# --- encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "title", "encoding"),
    [
        ("gb2312-declared.xml", GB_TITLE, "gb18030"),
        ("gb18030-declared.xml", GB_TITLE + "€", "gb18030"),
        ("gbk-undeclared.xml", GB_TITLE, "gb18030"),
        ("gbk-declared-utf8.xml", GB_TITLE, "gb18030"),
        ("big5-declared.xml", BIG5_TITLE, "big5hkscs"),
        ("big5-undeclared.xml", BIG5_TITLE, "big5hkscs"),
        ("utf8-bom.xml", GB_TITLE, "utf-8"),
        ("utf16-bom.xml", GB_TITLE, "utf-16-le"),
        ("utf8-declared-utf16.xml", GB_TITLE, "utf-8"),
    ],
)
def test_every_encoding_gives_clean_chinese(name: str, title: str, encoding: str) -> None:
    feed = parse(name)
    assert feed.encoding == encoding
    assert feed.items[0].title == title
    assert feed.title in ("示例新闻 国内", "範例新聞 臺灣")
    assert not any("\ufffd" in (item.title + (item.summary or "")) for item in feed.items)


@pytest.mark.parametrize("charset", ["utf-8", "iso-8859-1", "big5"])
def test_wrong_charset_in_http_header(charset: str) -> None:
    feed = parse("gb2312-declared.xml", {"Content-Type": f"text/xml; charset={charset}"})
    assert feed.items[0].title == GB_TITLE


def test_operator_encoding_override() -> None:
    body = (FIXTURES / "gb2312-declared.xml").read_bytes().replace(b"gb2312", b"iso-8859-1")
    assert parse(body).items[0].title != GB_TITLE  # the declaration alone misleads
    feed = parse(body, encoding="gbk")
    assert feed.items[0].title == GB_TITLE
    assert feed.encoding == "gb18030"
    with pytest.raises(ParseError, match="unknown encoding"):
        parse(body, encoding="no-such-charset")


# --- item fields ----------------------------------------------------------------------------


def test_rss20_item_fields() -> None:
    items = parse("rss20.xml").items
    first = items[0]
    assert first.entry_id == "news-1001"
    assert first.link == "https://news.example.cn/a/1001.html?id=7"
    assert first.title == "国务院 发布 新规 & 解读"
    assert first.author == "张编辑"
    assert first.categories == ("政策", "国内")
    assert first.published == datetime(2025, 11, 25, 0, tzinfo=UTC)  # "08:00:00 CST"
    assert first.updated is None
    assert len(first.content_hash) == 64


def test_html_is_sanitized_and_relative_urls_resolved_against_the_entry_link() -> None:
    first = parse("rss20.xml").items[0]
    assert first.summary == '<p>摘要 <img src="https://news.example.cn/img/1.png"></p>'
    content = first.content or ""
    for forbidden in ("script", "alert", "javascript", "onclick", "onerror", "steal"):
        assert forbidden not in content
    assert 'href="https://news.example.cn/a/1000.html"' in content
    assert 'src="https://news.example.cn/a/pic.jpg"' in content
    assert 'alt="图"' in content and "<div>点击</div>" in content


def test_entry_id_fallback_chain() -> None:
    items = parse("rss20.xml").items
    assert items[0].entry_id == "news-1001"  # guid
    assert items[1].entry_id == "https://feeds.example.cn/a/1002.html"  # canonical link
    assert items[1].link == "https://feeds.example.cn/a/1002.html"  # fbclid, gclid gone
    assert items[2].entry_id.startswith("hash:") and items[2].link is None
    assert parse("rss20.xml").items[2].entry_id == items[2].entry_id  # stable


def test_dates_zoneless_chinese_missing_and_future() -> None:
    feed = parse("rss20.xml")
    items = feed.items
    assert items[1].published == datetime(2025, 11, 25, 1, 30, tzinfo=UTC)  # zone-less
    assert items[2].published == datetime(2025, 11, 25, 2, 0, tzinfo=UTC)  # 2025年11月25日 10:00
    assert items[3].published is None  # 2030: more than a day after `now`
    assert items[4].published is None  # no date at all
    assert any("future" in warning for warning in feed.warnings)


def test_source_timezone_applies_to_zoneless_times() -> None:
    utc = parse("rss20.xml", timezone="UTC").items[1]
    assert utc.published == datetime(2025, 11, 25, 9, 30, tzinfo=UTC)
    with pytest.raises(ParseError, match="time zone"):
        parse("rss20.xml", timezone="Mars/Olympus")


def test_date_just_ahead_of_now_is_kept() -> None:
    body = rss("<item><guid>a</guid><pubDate>2025-11-26 12:00:00</pubDate></item>")
    assert parse(body).items[0].published == datetime(2025, 11, 26, 4, tzinfo=UTC)


def test_unrecognised_date_is_none_with_a_warning() -> None:
    body = rss("<item><guid>a</guid><pubDate>05/20 7:03 am</pubDate></item>")
    feed = parse(body)
    assert feed.items[0].published is None
    assert any("unrecognised date" in warning for warning in feed.warnings)


def test_updated_stands_in_for_a_missing_published() -> None:
    item = parse("atom10.xml").items[1]
    assert item.published == item.updated == datetime(2025, 11, 24, 0, tzinfo=UTC)


def test_atom_xml_base_html_title_and_text_summary() -> None:
    first, second = parse("atom10.xml").items
    assert first.link == "https://atom.example.tw/blog/posts/1.html"
    assert first.title == "強調 標題"
    assert first.summary == "純文字 &lt;摘要&gt;"  # type="text": shown, not interpreted
    assert first.content == (
        '<p>內容 <a href="https://atom.example.tw/other.html" rel="noopener noreferrer">'
        "相關</a></p>"
    )
    assert first.author == "陳作者"
    assert first.updated == datetime(2025, 11, 25, 1, tzinfo=UTC)  # zone-less
    assert second.content == '<p>段落 <img src="https://atom.example.tw/i.png"></p>'


def test_json_feed_fields() -> None:
    feed = parse("jsonfeed11.json")
    assert (feed.title, feed.link, feed.language) == (
        "JSON 频道",
        "https://json.example.cn/",
        "zh-CN",
    )
    first, second = feed.items
    assert first.entry_id == "j-1"
    assert first.link == "https://json.example.cn/posts/1"
    assert first.author == "赵作者"
    assert first.categories == ("科技", "互联网")
    assert first.published == datetime(2025, 11, 25, 0, tzinfo=UTC)
    assert first.updated == datetime(2025, 11, 25, 2, tzinfo=UTC)  # zone-less, Shanghai
    assert first.summary == "摘要 &lt;b&gt;不是&lt;/b&gt; HTML"
    assert "script" not in (first.content or "")
    assert 'href="https://json.example.cn/posts/0"' in (first.content or "")
    assert second.entry_id == "2"
    assert second.content == "只有文本<br>第二行"
    assert second.title == "只有文本 第二行"  # no title: the start of its text


def test_content_hash_is_stable_and_follows_changes() -> None:
    body = (FIXTURES / "rss20.xml").read_bytes()
    first = by_id(parse(body))
    again = by_id(parse(body))
    assert {k: v.content_hash for k, v in first.items()} == {
        k: v.content_hash for k, v in again.items()
    }
    edited = by_id(parse(body.replace("纯文本摘要".encode(), "改过的摘要".encode())))
    changed = [k for k in first if first[k].content_hash != edited[k].content_hash]
    assert changed == ["https://feeds.example.cn/a/1002.html"]


def test_repeated_and_empty_entries() -> None:
    body = rss(
        "<item><guid>a</guid><title>first</title></item>"
        "<item><guid>a</guid><title>second</title></item>"
        "<item></item>"
    )
    feed = parse(body)
    assert [item.title for item in feed.items] == ["first"]
    assert any("repeated entry id" in w for w in feed.warnings)
    assert any("empty entries skipped" in w for w in feed.warnings)


# --- feed level -----------------------------------------------------------------------------


def test_feed_level_fields() -> None:
    feed = parse("rss20.xml")
    assert feed.title == "示例 & 新闻"
    assert feed.link == "https://news.example.cn/"
    assert feed.language == "zh-CN"
    assert feed.encoding == "utf-8"
    assert feed.ttl_minutes == 30
    assert feed.skip_hours == frozenset({0, 1, 23})
    assert feed.skip_days == frozenset({5, 6})


def test_feed_without_schedule_hints() -> None:
    feed = parse("rss091.xml")
    assert (feed.ttl_minutes, feed.skip_hours, feed.skip_days) == (None, frozenset(), frozenset())


def test_content_language_header_is_the_fallback_language() -> None:
    feed = parse(rss("<item><guid>a</guid></item>"), {"Content-Language": "zh-TW"})
    assert feed.language == "zh-TW"


# --- ill-formed feeds versus no feed --------------------------------------------------------


def test_bozo_with_entries_is_a_warning() -> None:
    feed = parse("bozo-with-entries.xml")
    assert [item.entry_id for item in feed.items] == ["bozo-1", "bozo-2"]
    assert feed.items[0].title == "未定义的实体 在这里"  # &nbsp; without a DTD
    assert feed.items[1].title == "第二条 A&B"  # bare ampersand
    assert any("not well-formed" in warning for warning in feed.warnings)


def test_valid_feed_without_entries_is_empty_not_an_error() -> None:
    feed = parse("empty-channel.xml")
    assert feed.items == ()
    assert feed.title == "暂无内容"


def test_html_page_raises_parse_error() -> None:
    with pytest.raises(ParseError, match="HTML page") as info:
        parse("html-page.html")
    assert info.value.url == FEED_URL


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"  \r\n ", "empty"),
        (b"\x00\x01\x02garbage\xff\xfe", "not a feed"),
        (b"just some text", "not a feed"),
        (b'{"name": "app manifest"}', "jsonfeed.org"),
        (b'{"version": "https://jsonfeed.org/version/1", "items": [', "invalid JSON"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": 3}', "items"),
        (b'<?xml version="1.0"?><rss version="2.0"><channel>', "not well-formed"),
        (b'<?xml version="1.0"?><!DOCTYPE html><html><body>x</body></html>', "HTML"),
    ],
)
def test_documents_that_are_no_feed(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(body)


def test_feedparser_is_never_given_a_path_or_url(tmp_path: Path) -> None:
    feed_file = tmp_path / "feed.xml"
    feed_file.write_bytes(rss("<item><guid>a</guid></item>"))
    with pytest.raises(ParseError):
        parse(str(feed_file).encode())  # bytes are the document, never a file name
    with pytest.raises(ParseError):
        parse(b"http://127.0.0.1:9/feed.xml")


def test_core_does_not_load_io_libraries() -> None:
    code = (
        "import sys\n"
        "import feedhub.core.dates, feedhub.core.normalize\n"
        "assert 'feedparser' not in sys.modules, 'only core.parse may import feedparser'\n"
        "import feedhub.core.parse\n"
        "loaded = {'httpx', 'sqlalchemy', 'apscheduler'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
