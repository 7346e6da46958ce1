"""Canonical links, sanitized HTML, plain text, stable ids, hashes and byte decoding."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from feedhub.core.normalize import (
    build_item,
    canonical_url,
    content_hash,
    decode_document,
    normalize_encoding,
    plain_text,
    repair_xml_entities,
    sanitize_html,
    stable_entry_id,
)

# --- canonical_url ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://e.cn/a?utm_source=rss&utm_medium=feed&utm_campaign=x", "https://e.cn/a"),
        ("https://e.cn/a?id=7&utm_source=rss", "https://e.cn/a?id=7"),
        ("https://e.cn/a?spm=a2c4g.11186623&id=42", "https://e.cn/a?id=42"),
        ("https://e.cn/a?from=timeline&isappinstalled=0", "https://e.cn/a"),
        ("https://e.cn/a?fbclid=IwAR0&gclid=Cj0&msclkid=1&yclid=2", "https://e.cn/a"),
        ("https://e.cn/a?UTM_Source=x&Id=3", "https://e.cn/a?Id=3"),
        ("https://e.cn/a.html#utm_source=x", "https://e.cn/a.html"),
    ],
)
def test_tracking_parameters_are_removed(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_parameters_that_identify_the_article_survive_in_order_and_escaping() -> None:
    url = (
        "https://mp.weixin.qq.com/s?__biz=MzA5&mid=2650&idx=1&sn=abc&scene=21"
        "&q=%E4%B8%AD%E6%96%87+x&page=2&a=&b"
    )
    assert canonical_url(url) == (
        "https://mp.weixin.qq.com/s?__biz=MzA5&mid=2650&idx=1&sn=abc"
        "&q=%E4%B8%AD%E6%96%87+x&page=2&a=&b"
    )


def test_fragment_that_names_the_post_is_kept() -> None:
    url = "http://www.cnblog.org/blog/archives/2004_08_29.html#109424958546889584"
    assert canonical_url(url) == url


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/a/1.html?utm_source=x", "https://news.e.cn/feed/", "https://news.e.cn/a/1.html"),
        ("b.html", "https://news.e.cn/feed/rss.xml", "https://news.e.cn/feed/b.html"),
        ("//cdn.e.cn/x", "https://news.e.cn/", "https://cdn.e.cn/x"),
        ("HTTP://News.E.CN:80/a", None, "http://news.e.cn/a"),
        ("https://News.E.CN:443", None, "https://news.e.cn/"),
        ("https://e.cn:8443/a", None, "https://e.cn:8443/a"),
        ("  https://e.cn/a\n/b  ", None, "https://e.cn/a/b"),
    ],
)
def test_relative_links_resolve_and_hosts_normalize(
    url: str, base: str | None, expected: str
) -> None:
    assert canonical_url(url, base) == expected


@pytest.mark.parametrize("url", ["javascript:alert(1)", "mailto:a@e.cn", "tag:e.cn,2025:1"])
def test_non_http_urls_are_left_alone(url: str) -> None:
    assert canonical_url(url) == url


def test_invalid_url_does_not_raise() -> None:
    assert canonical_url("http://[::1/a") == "http://[::1/a"


# --- sanitize_html ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "forbidden"),
    [
        ("<p>x<script>alert(1)</script></p>", "alert"),
        ('<img src="a.png" onerror="alert(1)">', "onerror"),
        ('<a href="javascript:alert(1)">x</a>', "javascript"),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', "alert"),
        ('<div onclick="steal()">x</div>', "onclick"),
        ('<iframe src="https://evil.example/"></iframe>', "iframe"),
        ("<style>body{display:none}</style><p>x</p>", "display"),
        ('<svg onload="alert(1)"><circle/></svg>', "onload"),
        ('<form action="https://evil.example/"><input name="p"></form>', "form"),
    ],
)
def test_sanitizer_removes_active_content(payload: str, forbidden: str) -> None:
    assert forbidden.lower() not in sanitize_html(payload).lower()


def test_sanitizer_keeps_ordinary_formatting_links_and_images() -> None:
    html = (
        '<h2>标题</h2><p><strong>粗</strong> <em>斜</em><br><a href="https://e.cn/x">链接</a></p>'
        '<ul><li>一</li></ul><blockquote>引用</blockquote><img src="https://e.cn/i.png" alt="图">'
        "<table><tr><td>格</td></tr></table>"
    )
    clean = sanitize_html(html)
    for kept in ("<h2>", "<strong>", "<em>", "<br>", 'href="https://e.cn/x"', "<ul>", "<li>"):
        assert kept in clean
    for kept in ("<blockquote>", 'src="https://e.cn/i.png"', 'alt="图"', "<td>"):
        assert kept in clean


def test_sanitizer_resolves_relative_urls_against_the_base() -> None:
    clean = sanitize_html(
        '<a href="/a/2.html">x</a><img src="pic.jpg"><a href="#top">t</a>',
        "https://news.e.cn/a/1.html",
    )
    assert 'href="https://news.e.cn/a/2.html"' in clean
    assert 'src="https://news.e.cn/a/pic.jpg"' in clean


def test_sanitizer_without_usable_base_keeps_relative_urls() -> None:
    assert 'href="/a/2.html"' in sanitize_html('<a href="/a/2.html">x</a>', None)
    assert 'href="/a/2.html"' in sanitize_html('<a href="/a/2.html">x</a>', "file:///x")


# --- plain_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "is_html", "expected"),
    [
        ("  国务院 <b>发布</b>\n  新规 &amp;amp; 解读 ", True, "国务院 发布 新规 &amp; 解读"),
        ("A &lt; B &amp; C", True, "A < B & C"),
        ("<script>alert(1)</script>标题", True, "标题"),
        ("第一行<br>第二行<p>段</p>", True, "第一行 第二行 段"),
        ("x&nbsp;y\u200b z\u3000w", True, "x y z w"),
        ("a<b and c>d", False, "a<b and c>d"),
        ("AT&amp;T", False, "AT&T"),
    ],
)
def test_plain_text(value: str, is_html: bool, expected: str) -> None:
    assert plain_text(value, is_html=is_html) == expected


# --- ids and hashes ---------------------------------------------------------------------------


def _id(guid: str | None, link: str | None, **text: str | None) -> str:
    fields: dict[str, str | None] = {"title": "t", "summary": "s", "content": None}
    fields.update(text)
    return stable_entry_id(
        guid,
        link,
        title=fields["title"],
        summary=fields["summary"],
        content=fields["content"],
        published=fields.get("published"),
    )


def test_entry_id_prefers_guid_then_link_then_content_hash() -> None:
    assert _id("  guid-1 ", "https://e.cn/a") == "guid-1"
    assert _id("", "https://e.cn/a") == "https://e.cn/a"
    assert _id("   ", "https://e.cn/a") == "https://e.cn/a"
    hashed = _id(None, None)
    assert hashed.startswith("hash:") and len(hashed) == len("hash:") + 64
    assert _id(None, None) == hashed  # stable across polls
    assert _id(None, None, title="other") != hashed
    assert _id(None, None, published="2025-11-25") != hashed


def test_overlong_ids_are_hashed() -> None:
    long_guid = "x" * 2000
    entry_id = _id(long_guid, None)
    assert entry_id.startswith("sha256:") and len(entry_id) < 100
    assert entry_id == _id(long_guid, None)


def test_content_hash_is_unambiguous() -> None:
    assert content_hash(["ab", "c"]) != content_hash(["a", "bc"])
    assert content_hash([None]) != content_hash([""])
    assert content_hash(["x"]) == content_hash(["x"])


def test_item_hash_covers_every_field() -> None:
    fields: dict[str, Any] = {
        "source_id": "s",
        "entry_id": "e",
        "link": "https://e.cn/a",
        "title": "t",
        "author": "a",
        "summary": "<p>s</p>",
        "content": "<p>c</p>",
        "published": datetime(2025, 11, 25, tzinfo=UTC),
        "updated": datetime(2025, 11, 26, tzinfo=UTC),
        "categories": ("x",),
    }
    base = build_item(**fields)
    changes = {
        "source_id": "s2",
        "entry_id": "e2",
        "link": None,
        "title": "t2",
        "author": None,
        "summary": None,
        "content": "<p>c2</p>",
        "published": datetime(2025, 11, 25, 1, tzinfo=UTC),
        "updated": None,
        "categories": ("x", "y"),
    }
    # the fingerprint and search terms are derived from the content, not content itself
    derived = {"content_hash", "fingerprint", "search_terms"}
    item_fields = {f.name for f in dataclasses.fields(base)} - derived
    assert set(changes) == item_fields
    for name, value in changes.items():
        changed = build_item(**{**fields, name: value})
        assert changed.content_hash != base.content_hash, name
    assert build_item(**fields).content_hash == base.content_hash


def test_categories_are_deduplicated_in_order() -> None:
    item = build_item(
        source_id="s",
        entry_id="e",
        link=None,
        title="t",
        author=None,
        summary=None,
        content=None,
        published=None,
        updated=None,
        categories=["b", "a", "", "b"],
    )
    assert item.categories == ("b", "a")


# --- decoding -------------------------------------------------------------------------------

GB_TEXT = "北京今日降温 陶喆演唱会门票开售，气温下降到零度以下。上海地铁新线开通。"
BIG5_TEXT = "臺北今日降溫 陶喆演唱會門票開賣，氣溫下降到十度以下。高雄捷運新線通車。"


def _doc(text: str, declaration: str | None) -> str:
    decl = f'<?xml version="1.0" encoding="{declaration}"?>' if declaration else ""
    return f"{decl}<rss><channel><title>{text}</title></channel></rss>"


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ("x-gbk", "gb18030"),
        ("cp936", "gb18030"),
        ("GB18030", "gb18030"),
        ("big5", "big5hkscs"),
        ("Big5-HKSCS", "big5hkscs"),
        ("iso-8859-1", "cp1252"),
        ("us-ascii", "cp1252"),
        ("UTF8", "utf-8"),
        ("no-such-charset", None),
    ],
)
def test_normalize_encoding(name: str, codec: str | None) -> None:
    assert normalize_encoding(name) == codec


def test_declared_gb2312_with_gbk_only_characters_decodes_as_gb18030() -> None:
    decoded = decode_document(_doc(GB_TEXT, "gb2312").encode("gbk"))
    assert GB_TEXT in decoded.text and decoded.encoding == "gb18030"
    assert decoded.warnings == ()


@pytest.mark.parametrize(("text", "codec"), [(GB_TEXT, "gbk"), (BIG5_TEXT, "big5hkscs")])
def test_undeclared_chinese_encodings_are_detected(text: str, codec: str) -> None:
    decoded = decode_document(_doc(text, None).encode(codec))
    assert text in decoded.text
    assert decoded.warnings  # a guess is reported


def test_wrong_http_charset_loses_to_the_bytes() -> None:
    body = _doc(GB_TEXT, "gb2312").encode("gbk")
    assert GB_TEXT in decode_document(body, http_charset="utf-8").text
    assert GB_TEXT in decode_document(body, http_charset="iso-8859-1").text


def test_utf8_bytes_declared_as_gb2312_are_read_as_utf8() -> None:
    decoded = decode_document(_doc(GB_TEXT, "gb2312").encode("utf-8"))
    assert GB_TEXT in decoded.text and decoded.encoding == "utf-8"


def test_declared_big5_with_invalid_bytes_keeps_big5() -> None:
    body = _doc(BIG5_TEXT, "big5").encode("big5hkscs").replace(b"</title>", b"\xff\xff</title>")
    decoded = decode_document(body)
    assert BIG5_TEXT in decoded.text and decoded.encoding == "big5hkscs"
    assert decoded.warnings


def test_override_wins_over_declaration() -> None:
    body = _doc(GB_TEXT, "iso-8859-1").encode("gbk")
    assert GB_TEXT not in decode_document(body).text
    assert GB_TEXT in decode_document(body, override="gb2312").text
    with pytest.raises(LookupError):
        decode_document(body, override="no-such-charset")


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_boms_and_wide_encodings(codec: str) -> None:
    decoded = decode_document(_doc(GB_TEXT, "utf-8").encode(codec))
    assert GB_TEXT in decoded.text
    assert decoded.text.startswith("<?xml")


def test_undeclared_latin1_is_not_mistaken_for_chinese() -> None:
    text = "Mãe de utente é a nova presidente da associação, diz Müller"
    decoded = decode_document(_doc(text, None).encode("latin-1"))
    assert text in decoded.text


def test_mostly_utf8_with_a_stray_byte_stays_utf8() -> None:
    body = _doc(GB_TEXT * 3, "utf-8").encode("utf-8") + b"\xe4\xb8"
    decoded = decode_document(body)
    assert GB_TEXT in decoded.text and decoded.encoding == "utf-8"
    assert decoded.warnings


def test_leading_whitespace_and_control_characters_are_removed() -> None:
    decoded = decode_document(b"\r\n  <?xml version='1.0'?><rss>a\x08b\x00c</rss>")
    assert decoded.text == "<?xml version='1.0'?><rss>abc</rss>"


# --- entity repair ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A & B", "A &amp; B"),
        ("a?x=1&y=2", "a?x=1&amp;y=2"),
        ("x&nbsp;y", "x&#160;y"),
        ("&copy; &unknownthing;", "&#169; &amp;unknownthing;"),
        ("a&#8;b&#x1F;c&#10;d&#x9;", "abc&#10;d&#x9;"),
        (
            "&amp; &lt; &gt; &quot; &apos; &#26469; &#x6765;",
            "&amp; &lt; &gt; &quot; &apos; &#26469; &#x6765;",
        ),
    ],
)
def test_repair_xml_entities(text: str, expected: str) -> None:
    assert repair_xml_entities(text) == expected


def test_documents_declaring_entities_are_not_touched() -> None:
    text = '<!DOCTYPE rss [<!ENTITY mine "x">]><rss>&mine; & </rss>'
    assert repair_xml_entities(text) == text
