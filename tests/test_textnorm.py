"""Text, title and link normalization for near-duplicate matching (feedhub.core.textnorm)."""

from __future__ import annotations

import pytest

from feedhub.core.textnorm import (
    clean_text,
    clean_title,
    fact_tokens,
    fold,
    html_to_text,
    match_title,
    to_simplified,
    url_key,
)


def test_fold_full_width_case_traditional_and_invisible_characters() -> None:
    assert fold("ＡＢＣ１２３，（臺灣）\u3000Ｘ") == "abc123,(台湾) x"
    assert fold("软\u200b件") == "软件"
    assert fold("E\u0301cole") == "école"  # combining accent composed, as NFKC does
    assert fold("①…") == "1..."


def test_to_simplified_converts_phrases_and_leaves_other_text_alone() -> None:
    assert to_simplified("這裡的軟體資訊") == "这里的软体资讯"
    text = "Plain English only"
    assert to_simplified(text) is text


def test_html_to_text_keeps_block_boundaries_as_lines() -> None:
    html = "<p>第一段&amp;内容</p><p>第二段<br>下一行</p><script>x()</script>"
    assert html_to_text(html).split("\n") == ["", "第一段&内容", "", "第二段", "下一行", " "]
    assert html_to_text("a < b and c > d") == "a < b and c > d"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("【临沂】重大项目集中开工", "重大项目集中开工"),
        ("【独家】[视频]重大项目集中开工", "重大项目集中开工"),
        ("(图)重大项目集中开工(组图)", "重大项目集中开工"),
        ("重大项目集中开工 - 琅琊新闻网", "重大项目集中开工"),
        ("重大项目集中开工_新浪网", "重大项目集中开工"),
        ("重大项目集中开工|澎湃新闻", "重大项目集中开工"),
        ("重大项目集中开工_临沂在线_新闻中心", "重大项目集中开工"),
        ("重大項目集中開工——手機鳳凰網", "重大项目集中开工"),
        ("中国军网 | 徐才厚病逝的消息今日公布", "徐才厚病逝的消息今日公布"),
        ("Storm hits coast, thousands flee - Reuters", "storm hits coast, thousands flee"),
        ("UPDATE 2-Storm hits coast", "storm hits coast"),
        ("Breaking: Storm hits coast | CNN", "storm hits coast"),
        ("A-B testing at scale", "a-b testing at scale"),
    ],
)
def test_clean_title_removes_what_reposting_adds(title: str, expected: str) -> None:
    assert clean_title(title) == expected


def test_clean_title_reads_short_bar_separated_titles_the_same_way_from_both_ends() -> None:
    # Which side of "《书名》|栏目" is the site name cannot be told; both copies must agree.
    assert clean_title("(图)《重新理解儿童》|每日一书|沂蒙晚报") == clean_title(
        "【临沂】《重新理解儿童》|每日一书"
    )


def test_clean_title_keeps_a_title_that_only_looks_like_a_suffix() -> None:
    assert clean_title("新华社 - 北京") == "新华社 - 北京"  # the "suffix" is half the title


def test_match_title_ignores_punctuation_case_and_spacing() -> None:
    assert match_title("Storm Hits Coast!") == match_title("storm hits coast")
    assert match_title("沪指涨0.52% 创业板跌") == "沪指涨0.52创业板跌"
    assert match_title("“两会”聚焦： 民生") == match_title('"两会"聚焦:民生')


def test_clean_text_drops_source_editor_and_reporter_lines() -> None:
    text = (
        "来源：临沂日报 2026-03-05 10:23\n"
        "　　3月5日，兰陵县（记者 张伟 通讯员 王芳）召开会议。\n"
        "原标题：兰陵县召开春季农业生产会议\n"
        "会议部署了春耕备播工作。\n"
        "编辑：刘洋\n"
        "责任编辑：陈静"
    )
    assert clean_text(text) == "3月5日,兰陵县 召开会议。\n会议部署了春耕备播工作。"


def test_clean_text_drops_boilerplate_inside_flattened_text() -> None:
    text = "会议部署了春耕备播工作。 责任编辑：刘洋 分享到：微信 微博 QQ空间 【纠错】【关闭】"
    assert clean_text(text) == "会议部署了春耕备播工作。"


def test_clean_text_drops_share_widgets_and_reprint_notices() -> None:
    text = "正文一段。\n扫一扫在手机打开当前页\n转载请注明出处。\n点击进入专题：春耕备播"
    assert clean_text(text) == "正文一段。"


def test_clean_text_drops_english_credit_lines() -> None:
    text = (
        "By John Smith\n"
        "The storm hit the coast on Monday. (Reporting by Jane Doe; Editing by Tom Brown)\n"
        "Share on Facebook Share on Twitter\n"
        "Copyright 2026 Example News. All rights reserved."
    )
    assert clean_text(text) == "the storm hit the coast on monday."


def test_clean_text_keeps_a_sentence_that_merely_mentions_a_reporter() -> None:
    text = "记者从市政府获悉，全市春耕进展顺利。"
    assert clean_text(text) == "记者从市政府获悉,全市春耕进展顺利。"


def test_clean_text_drops_a_short_tag_opening_the_body_but_not_a_flash_headline() -> None:
    assert clean_text("【临沂】全市春耕进展顺利。") == "全市春耕进展顺利。"
    flash = "【河北渤海治理成效显著 优良水质比例达到99%】据河北省生态环境厅消息"
    assert clean_text(flash) == fold(flash)


def test_fact_tokens_normalize_numbers_and_find_places() -> None:
    facts = fact_tokens(fold("３月５日，临沂市投资1,200.50亿元，同比增长03%，在济宁市和城市"))
    assert facts == {"#3", "#5", "#1200.5", "@临沂市", "@济宁市"}


def test_fact_tokens_of_the_same_text_are_the_same_whatever_its_width() -> None:
    assert fact_tokens(fold("２０２６年３月")) == fact_tokens(fold("2026年03月"))


@pytest.mark.parametrize(
    "variant",
    [
        "http://www.example.cn/news/2026/0305/123.html",
        "https://m.example.cn/news/2026/0305/123.html",
        "https://wap.example.cn/news/2026/0305/123.html/",
        "https://3g.example.cn/news/2026/0305/123.html?utm_source=wx&utm_medium=rss",
        "https://EXAMPLE.cn:443/news/2026/0305/123.html#comments",
    ],
)
def test_url_key_is_the_same_for_every_variant_of_one_article(variant: str) -> None:
    assert url_key(variant) == "example.cn/news/2026/0305/123.html"


def test_url_key_keeps_what_names_the_article() -> None:
    assert url_key("https://example.cn/a?id=2&cat=1") == url_key("https://example.cn/a?cat=1&id=2")
    assert url_key("https://example.cn/a?id=2") != url_key("https://example.cn/a?id=3")
    assert url_key("https://example.cn/#!/news/1") == "example.cn#!/news/1"
    assert url_key("https://example.cn:8080/a") == "example.cn:8080/a"
    assert url_key("https://m.cn/a") == "m.cn/a"  # a two-label host keeps its first label


@pytest.mark.parametrize("link", [None, "", "  ", "https://example.cn/", "mailto:a@b.cn", "/a"])
def test_url_key_is_empty_for_what_cannot_name_one_article(link: str | None) -> None:
    assert url_key(link) == ""
