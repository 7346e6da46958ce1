"""Near-duplicate detection: what merges, what stays apart, the window and the index."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import opencc
import pytest

from feedhub.core.bands import BandStore
from feedhub.core.dedupe import (
    DedupeSettings,
    Doc,
    Fingerprint,
    StoryIndex,
    compare,
    fingerprint,
)
from feedhub.core.similarity import substitutions
from feedhub.core.sketch import CJK_FLAG, jaccard, oph_signature, shingle_hashes, token_hashes

T0 = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
SETTINGS = DedupeSettings()

# Fixtures written for these tests: a county report, the same report from another county
# (one template), and a daily market summary on two days.
REPORT_TITLE = "兰陵县2026年一季度重大项目集中开工"
REPORT = [
    "3月5日上午，兰陵县2026年一季度重大项目集中开工仪式在兰陵经济开发区举行。此次集中开工"
    "项目共36个，总投资128.6亿元，涵盖新能源、新材料、现代农业和城乡基础设施等领域。",
    "县委主要负责同志在仪式上表示，要坚持项目为王，全力以赴抓项目、扩投资、稳增长，"
    "为全县高质量发展注入强劲动能。各部门要强化要素保障，优化审批服务，推动项目早投产早见效。",
    "据了解，今年全县计划实施省市县重点项目210个，年度计划投资420亿元，其中新开工项目"
    "95个。开发区将围绕主导产业延链补链，力争全年新签约亿元以上项目50个。",
]
OTHER_COUNTY_TITLE = "费县2026年一季度重大项目集中开工"
OTHER_COUNTY = [
    "3月6日上午，费县2026年一季度重大项目集中开工仪式在费县经济开发区举行。此次集中开工"
    "项目共28个，总投资96.3亿元，涵盖新能源、新材料、现代农业和城乡基础设施等领域。",
    REPORT[1].replace("全县", "全县"),
    "据了解，今年全县计划实施省市县重点项目180个，年度计划投资350亿元，其中新开工项目"
    "72个。开发区将围绕主导产业延链补链，力争全年新签约亿元以上项目40个。",
]
MARKET_TITLE = "A股收评：沪指涨0.52% 创业板指跌0.31%"
MARKET = (
    "截至收盘，沪指涨0.52%报3215.36点，深成指跌0.12%报10432.18点，创业板指跌0.31%报2087.55点。"
    "两市成交额合计8732亿元，较上一交易日减少412亿元。盘面上，煤炭、电力板块涨幅居前，"
    "半导体、软件开发板块跌幅居前。北向资金全天净买入23.6亿元。"
)
MARKET_NEXT_TITLE = "A股收评：沪指跌0.18% 创业板指涨0.77%"
MARKET_NEXT = (
    "截至收盘，沪指跌0.18%报3209.57点，深成指涨0.35%报10468.70点，创业板指涨0.77%报2103.62点。"
    "两市成交额合计9120亿元，较上一交易日增加388亿元。盘面上，煤炭、电力板块涨幅居前，"
    "半导体、软件开发板块跌幅居前。北向资金全天净买入11.2亿元。"
)
EN_TITLE = "Harbour bridge closed after storm damages cables"
EN = [
    "WELLINGTON (Example) - The city's harbour bridge was closed to all traffic on Monday after "
    "a storm overnight damaged two of its support cables, the transport agency said.",
    "Engineers were inspecting the structure and the agency said it could not yet say when the "
    "bridge would reopen. Commuters were advised to use ferries and the southern motorway.",
    "The storm brought gusts of up to 140 km/h and left 12,000 homes without power across the "
    "region, the electricity network operator said.",
]

_S2T = opencc.OpenCC("s2t")
TRAD_TITLE = _S2T.convert(REPORT_TITLE)


def doc(
    key: str,
    title: str,
    paragraphs: list[str] | str,
    *,
    source: str = "a",
    link: str | None = None,
    hours: float = 0.0,
) -> Doc:
    text = paragraphs if isinstance(paragraphs, str) else "\n".join(paragraphs)
    return Doc(key, source, title, text, link, T0 + timedelta(hours=hours))


def verdict(a: Doc, b: Doc, settings: DedupeSettings = SETTINGS) -> str | None:
    return compare(fingerprint(a, settings), fingerprint(b, settings), settings).reason


ORIGINAL = doc("o", REPORT_TITLE, REPORT, source="county", link="https://www.lanling.gov.cn/a/1")


# --- reposts merge --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "paragraphs"),
    [
        pytest.param("【临沂】" + REPORT_TITLE, REPORT, id="tag-prefix"),
        pytest.param("【独家】[视频]" + REPORT_TITLE, REPORT, id="several-tags"),
        pytest.param(REPORT_TITLE + " - 琅琊新闻网", REPORT, id="site-suffix"),
        pytest.param(REPORT_TITLE + "_新浪网", REPORT, id="underscore-suffix"),
        pytest.param(REPORT_TITLE + "|澎湃新闻", REPORT, id="bar-suffix"),
        pytest.param(REPORT_TITLE, ["来源：临沂日报", *REPORT, "编辑：刘洋"], id="source-editor"),
        pytest.param(REPORT_TITLE, [*REPORT, "责任编辑：陈静 审核：王芳"], id="editor-line"),
        pytest.param(
            REPORT_TITLE, [REPORT[0].replace("。", "（记者 张伟 通讯员 王芳）。", 1), *REPORT[1:]],
            id="reporter-credit",
        ),
        pytest.param(REPORT_TITLE, REPORT[:2], id="cut-last-paragraph"),
        pytest.param(REPORT_TITLE, [REPORT[0], REPORT[2]], id="cut-middle-paragraph"),
        pytest.param(REPORT_TITLE, REPORT[0][:80] + "……", id="truncated-summary"),
        pytest.param(TRAD_TITLE, [_S2T.convert(p) for p in REPORT], id="traditional"),
        pytest.param(
            REPORT_TITLE.translate({c: c + 0xFEE0 for c in range(0x30, 0x3A)}),
            [p.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}) for p in REPORT],
            id="full-width",
        ),
        pytest.param(REPORT_TITLE, [*REPORT, "分享到：微信 微博 QQ空间", "【纠错】"], id="widget"),
        pytest.param(REPORT_TITLE, " ".join(REPORT), id="flattened"),
        pytest.param(REPORT_TITLE, "".join(f"<p>\u3000\u3000{p}</p>" for p in REPORT), id="html"),
        pytest.param(
            "【沂蒙】" + TRAD_TITLE + "_手机凤凰网",
            ["原标题：" + REPORT_TITLE, *(_S2T.convert(p) for p in REPORT[:2]), "扫一扫"],
            id="edit-chain",
        ),
    ],
)  # fmt: skip
def test_a_repost_with_each_kind_of_edit_is_a_near_duplicate(
    title: str, paragraphs: list[str] | str
) -> None:
    repost = doc("r", title, paragraphs, source="aggregator", link="https://agg.example/9", hours=3)
    assert verdict(ORIGINAL, repost) == "near-duplicate"


def test_english_reposts_with_title_case_punctuation_and_wire_suffix_merge() -> None:
    original = doc("e", EN_TITLE, EN, source="herald")
    repost = doc(
        "f",
        "UPDATE 1-Harbour Bridge Closed After Storm Damages Cables - Reuters",
        ["By John Smith", *EN[:2], "(Reporting by Jane Doe; Editing by Tom Brown)"],
        source="wire",
    )
    assert verdict(original, repost) == "near-duplicate"
    assert verdict(original, dataclasses.replace(repost, title=EN_TITLE.lower() + "!")) == (
        "near-duplicate"
    )


# --- exact duplicates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        "http://www.lanling.gov.cn/a/1",
        "https://m.lanling.gov.cn/a/1/",
        "https://wap.lanling.gov.cn/a/1?utm_source=weixin&from=timeline",
    ],
)
def test_the_same_article_link_from_another_source_is_a_same_url_match(link: str) -> None:
    other = doc("u", "兰陵县重大项目开工", "另一家网站的摘要。", source="city-paper", link=link)
    assert verdict(ORIGINAL, other) == "same-url"


def test_a_shared_landing_page_link_does_not_merge_unrelated_items() -> None:
    a = doc(
        "a", "兰陵县召开春耕备播会议", "会议部署了春耕备播工作。", link="https://example.cn/news"
    )
    b = doc(
        "b", "沂河流域开展汛前检查", "水利部门开展了汛前安全检查。", link="https://example.cn/news"
    )
    assert verdict(a, b) is None


def test_a_front_page_link_is_no_evidence_at_all() -> None:
    a = doc("a", "兰陵县召开春耕备播会议", "会议部署了春耕备播工作。", link="https://example.cn/")
    b = dataclasses.replace(a, key="b", title="兰陵县春耕备播会议召开", source_id="b")
    assert fingerprint(a, SETTINGS).url_key == ""
    assert compare(fingerprint(a, SETTINGS), fingerprint(b, SETTINGS), SETTINGS).reason != (
        "same-url"
    )


# --- hard negatives stay apart --------------------------------------------------------------------


def test_another_countys_report_from_the_same_template_stays_apart() -> None:
    other = doc("x", OTHER_COUNTY_TITLE, OTHER_COUNTY, source="feixian", hours=20)
    result = compare(fingerprint(ORIGINAL, SETTINGS), fingerprint(other, SETTINGS), SETTINGS)
    assert result.reason is None
    assert result.title_similarity > 0.8  # they do look alike


def test_the_next_days_market_summary_stays_apart() -> None:
    today = doc("m1", MARKET_TITLE, MARKET, source="finance")
    tomorrow = doc("m2", MARKET_NEXT_TITLE, MARKET_NEXT, source="finance", hours=24)
    elsewhere = dataclasses.replace(tomorrow, source_id="portal")
    assert verdict(today, tomorrow) is None
    assert verdict(today, elsewhere) is None


def test_the_same_kind_of_event_with_other_numbers_stays_apart() -> None:
    template = (
        "{d}日，兰陵县卞庄街道发生一起交通事故，造成{k}人死亡、{h}人受伤，事故原因正在调查中。"
    )
    first = doc("t1", "兰陵县发生一起交通事故", template.format(d=3, k=2, h=3), source="a")
    second = doc("t2", "兰陵县发生一起交通事故", template.format(d=4, k=1, h=5), source="b")
    assert verdict(first, second) is None


def test_a_template_with_one_word_substituted_stays_apart() -> None:
    text = "本期视频动态背景PPT动画模板素材，适合年终总结、工作汇报和产品发布会使用，免费下载。"
    a = doc("p1", "吉他的视频动态背景PPT动画模板素材下载", text.replace("本期", "吉他"), source="a")
    b = doc(
        "p2", "相机镜头的视频动态背景PPT动画模板素材下载", text.replace("本期", "相机"), source="b"
    )
    assert verdict(a, b) is None


def test_english_template_stories_about_other_companies_stay_apart() -> None:
    text = "{c} said on Tuesday its quarterly profit rose, beating forecasts, as demand held up."
    a = doc("c1", "Northwind profit rises, beats forecasts", text.format(c="Northwind"), source="a")
    b = doc("c2", "Contoso profit rises, beats forecasts", text.format(c="Contoso"), source="b")
    assert verdict(a, b) is None


def test_unrelated_stories_sharing_feed_boilerplate_stay_apart() -> None:
    footer = " ".join(["Subscribe to our newsletter for the latest local news and weather."] * 3)
    a = doc(
        "b1",
        "Council approves new cycle lanes",
        "The council approved lanes. " + footer,
        source="a",
    )
    b = doc(
        "b2", "School wins national robotics prize", "A school won a prize. " + footer, source="b"
    )
    assert verdict(a, b) is None


# --- one source -----------------------------------------------------------------------------------


def test_a_source_reissuing_an_item_under_a_new_key_merges() -> None:
    reissued = dataclasses.replace(ORIGINAL, key="o2", link="https://www.lanling.gov.cn/a/1?p=2")
    assert verdict(ORIGINAL, reissued) == "near-duplicate"


def test_a_sources_own_series_from_one_template_does_not_merge() -> None:
    cut = doc("c", REPORT_TITLE, REPORT[:2], source="county")  # would merge from another source
    assert verdict(ORIGINAL, cut) is None
    assert verdict(ORIGINAL, dataclasses.replace(cut, source_id="other")) == "near-duplicate"


# --- the index ------------------------------------------------------------------------------------


def cluster(index: StoryIndex, *docs: Doc) -> dict[str, str]:
    stories = {}
    for d in docs:
        fp = fingerprint(d, SETTINGS)
        found = index.match(fp, d.published)
        stories[d.key] = found.story_id if found else d.key
        index.add(d.key, stories[d.key], fp, d.published)
    return stories


def test_index_groups_reposts_and_keeps_hard_negatives_apart() -> None:
    index = StoryIndex(SETTINGS)
    stories = cluster(
        index,
        ORIGINAL,
        doc("r1", "【临沂】" + REPORT_TITLE, REPORT[:2], source="agg1", hours=1),
        doc("x", OTHER_COUNTY_TITLE, OTHER_COUNTY, source="feixian", hours=2),
        doc("r2", REPORT_TITLE + "_新浪网", ["来源：临沂日报", *REPORT], source="agg2", hours=3),
        doc("m1", MARKET_TITLE, MARKET, source="finance", hours=4),
        doc("m2", MARKET_NEXT_TITLE, MARKET_NEXT, source="finance", hours=28),
    )
    assert stories == {"o": "o", "r1": "o", "x": "x", "r2": "o", "m1": "m1", "m2": "m2"}
    assert len(index) == 6
    assert index.story_of("r2") == "o"


def test_match_explains_itself() -> None:
    index = StoryIndex(SETTINGS)
    cluster(index, ORIGINAL)
    repost = doc("r", REPORT_TITLE + "_新浪网", REPORT, source="agg", hours=1)
    found = index.match(fingerprint(repost, SETTINGS), repost.published)
    assert found is not None
    assert (found.story_id, found.key, found.reason) == ("o", "o", "near-duplicate")
    assert found.title_similarity == 1.0
    assert found.text_similarity == pytest.approx(1.0)
    assert found.score == pytest.approx(1.0)


def test_match_respects_the_window_on_both_sides() -> None:
    settings = DedupeSettings(window_seconds=6 * 3600)
    index = StoryIndex(settings)
    index.add("o", "o", fingerprint(ORIGINAL, settings), ORIGINAL.published)
    fp = fingerprint(doc("r", REPORT_TITLE + "_新浪网", REPORT, source="agg"), settings)
    assert index.match(fp, T0 + timedelta(hours=5)) is not None
    assert index.match(fp, T0 - timedelta(hours=5)) is not None
    assert index.match(fp, T0 + timedelta(hours=7)) is None
    assert index.match(fp, T0 - timedelta(hours=7)) is None


def test_exclude_source_leaves_that_source_out() -> None:
    index = StoryIndex(SETTINGS)
    cluster(index, ORIGINAL)
    fp = fingerprint(doc("r", REPORT_TITLE, REPORT, source="agg"), SETTINGS)
    assert index.match(fp, T0, exclude_source="county") is None
    assert index.match(fp, T0, exclude_source="agg") is not None


def test_evict_before_forgets_old_items() -> None:
    index = StoryIndex(SETTINGS)
    cluster(index, ORIGINAL, doc("m1", MARKET_TITLE, MARKET, source="finance", hours=10))
    assert index.evict_before(T0 + timedelta(hours=1)) == 1
    assert len(index) == 1 and "o" not in index and "m1" in index
    fp = fingerprint(doc("r", REPORT_TITLE, REPORT, source="agg"), SETTINGS)
    assert index.match(fp, T0) is None
    assert index.evict_before(T0 + timedelta(hours=1)) == 0


def test_adding_a_key_again_replaces_it() -> None:
    index = StoryIndex(SETTINGS)
    cluster(index, ORIGINAL)
    market = fingerprint(doc("o", MARKET_TITLE, MARKET, source="finance"), SETTINGS)
    index.add("o", "o", market, T0)
    assert len(index) == 1
    fp = fingerprint(doc("r", REPORT_TITLE, REPORT, source="agg"), SETTINGS)
    assert index.match(fp, T0) is None
    assert index.evict_before(T0 + timedelta(seconds=1)) == 1


def test_rebuilding_from_stored_fingerprints_matches_like_the_live_index() -> None:
    docs = [
        ORIGINAL,
        doc("x", OTHER_COUNTY_TITLE, OTHER_COUNTY, source="feixian", hours=2),
        doc("m1", MARKET_TITLE, MARKET, source="finance", hours=4),
    ]
    live = StoryIndex(SETTINGS)
    cluster(live, *docs)
    stored = [(d.key, d.key, fingerprint(d, SETTINGS).to_bytes(), d.published) for d in docs]
    rebuilt = StoryIndex(SETTINGS)
    assert rebuilt.add_many((k, s, Fingerprint.from_bytes(b), p) for k, s, b, p in stored) == 3
    probe = fingerprint(doc("r", "【临沂】" + REPORT_TITLE, REPORT[:2], source="agg"), SETTINGS)
    assert rebuilt.match(probe, T0) == live.match(probe, T0)
    assert rebuilt.match(probe, T0) is not None


def test_many_items_in_the_index_still_find_the_right_story() -> None:
    index = StoryIndex(SETTINGS)
    rng = random.Random(7)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(3000)]
    before = T0 - timedelta(hours=1)
    fillers = []
    for i in range(3000):
        filler = doc(f"f{i}", " ".join(rng.choices(words, k=6)), " ".join(rng.choices(words, k=40)))
        fillers.append((f"f{i}", f"f{i}", fingerprint(filler, SETTINGS), before))
    index.add_many(fillers[:1000])
    for key, story, fp, published in fillers[1000:]:
        index.add(key, story, fp, published)  # through the buffer and segment merges
    cluster(index, ORIGINAL)
    repost = doc("r", REPORT_TITLE + "_新浪网", REPORT[:2], source="agg", hours=1)
    found = index.match(fingerprint(repost, SETTINGS), repost.published)
    assert found is not None and found.key == "o"
    assert index.evict_before(T0 - timedelta(minutes=30)) == 3000
    assert len(index) == 1


def test_index_refuses_fingerprints_of_another_scheme() -> None:
    other = DedupeSettings(shingle=4)
    index = StoryIndex(SETTINGS)
    with pytest.raises(ValueError, match="recompute"):
        index.add("o", "o", fingerprint(ORIGINAL, other), T0)


# --- fingerprints ---------------------------------------------------------------------------------


def test_fingerprint_round_trips_through_bytes() -> None:
    fp = fingerprint(ORIGINAL, SETTINGS)
    data = fp.to_bytes()
    assert Fingerprint.from_bytes(data) == fp
    assert fp.url_key == "lanling.gov.cn/a/1"
    assert fp.title == "兰陵县2026年一季度重大项目集中开工"
    assert len(data) < 2048


@pytest.mark.parametrize("data", [b"", b"FP", b"XX" + bytes(40)])
def test_fingerprint_from_bytes_refuses_what_is_not_one(data: bytes) -> None:
    with pytest.raises(ValueError):
        Fingerprint.from_bytes(data)


def test_fingerprint_from_bytes_refuses_a_truncated_one() -> None:
    with pytest.raises(ValueError, match="length"):
        Fingerprint.from_bytes(fingerprint(ORIGINAL, SETTINGS).to_bytes()[:-1])


def test_fingerprints_are_the_same_in_another_process() -> None:
    """Stored fingerprints are compared across restarts: no hash may depend on the process."""
    code = (
        "import sys; from datetime import datetime, UTC;"
        "from feedhub.core.dedupe import DedupeSettings, Doc, fingerprint;"
        "d = Doc('k', 's', sys.argv[1], sys.argv[2], None, datetime(2026, 1, 1, tzinfo=UTC));"
        "sys.stdout.write(fingerprint(d, DedupeSettings()).to_bytes().hex())"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code, ORIGINAL.title, ORIGINAL.text],
        capture_output=True, text=True, check=True, env=env, timeout=60,
    )  # fmt: skip
    assert (
        bytes.fromhex(out.stdout)
        == dataclasses.replace(
            fingerprint(ORIGINAL, SETTINGS), source_id="s", url_key=""
        ).to_bytes()
    )


def test_fingerprint_of_an_empty_item_never_matches_by_text() -> None:
    empty = doc("e", "", "")
    fp = fingerprint(empty, SETTINGS)
    assert fp.size == 0
    assert compare(fp, fp, SETTINGS).reason is None


@pytest.mark.parametrize(
    "kwargs",
    [{"num_perm": 100}, {"lsh_rows": 0}, {"window_seconds": 0}, {"text_threshold": 1.5},
     {"sketch_size": 0}, {"shingle": 0}],
)  # fmt: skip
def test_settings_refuse_impossible_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DedupeSettings(**kwargs)  # type: ignore[arg-type]


# --- the pieces -----------------------------------------------------------------------------------


def test_tokens_are_cjk_characters_and_words() -> None:
    assert token_hashes("Hello, world! 你好 2026年").size == 6
    assert token_hashes(" ,.!").size == 0
    assert shingle_hashes(token_hashes("ab"), 3).size == 1  # shorter than a shingle: one
    assert shingle_hashes(token_hashes(""), 3).size == 0


def test_jaccard_is_exact_for_small_sets_and_close_for_large_ones() -> None:
    a = np.arange(0, 100, dtype=np.uint32)
    b = np.arange(50, 150, dtype=np.uint32)
    assert jaccard(a, 100, b, 100) == (pytest.approx(50 / 150), pytest.approx(0.5))
    rng = np.random.default_rng(1)
    pool = rng.permutation(np.unique(rng.integers(0, 2**32, size=30000, dtype=np.uint32)))
    big_a, big_b = pool[:20000], pool[10000:]  # true Jaccard 10000 / len(pool)
    truth = 10000 / pool.size
    sketch_a, sketch_b = np.sort(big_a)[:256], np.sort(big_b)[:256]
    estimate, _ = jaccard(sketch_a, big_a.size, sketch_b, big_b.size)
    assert abs(estimate - truth) < 0.1


def test_one_permutation_signatures_agree_in_proportion_to_similarity() -> None:
    rng = np.random.default_rng(3)
    pool = np.unique(rng.integers(0, 2**32, size=4000, dtype=np.uint32))
    a, b = pool[:3000], pool[1000:]  # Jaccard about 0.5
    agree = np.mean(oph_signature(np.sort(a), 128) == oph_signature(np.sort(b), 128))
    assert 0.35 < agree < 0.65
    assert not oph_signature(np.zeros(0, dtype=np.uint32), 128).any()
    short = oph_signature(np.array([5, 2**31], dtype=np.uint32), 128)
    assert np.unique(short).size > 2  # empty bins borrow, shifted so they stay distinct


def test_substitutions_count_replaced_words_but_not_insertions_or_misalignment() -> None:
    def count(a: str, b: str, whole: bool = True) -> int:
        ta, tb = token_hashes(a).tolist(), token_hashes(b).tolist()
        return substitutions(ta, tb, 8, 2, whole=whole, flag=CJK_FLAG)

    assert count("临沂市重大项目集中开工", "济宁市重大项目集中开工") == 1
    assert count("百叶窗向左揭开转场动画", "横向彩条揭开转场动画") == 1
    assert count("security suite gold edition", "security suite standard edition") == 1
    assert count("new product for windows", "new product for linux") == 1  # a word at the end
    assert count("new product for windows", "new product for linux", whole=False) == 0
    assert count("临沂市重大项目集中开工", "临沂市重大项目集中开工仪式") == 0
    assert count("storm hits the coast", "breaking storm hits the coast today") == 0
    assert count("一二三四五六七八九十", "一二三四甲乙丙丁戊己庚辛壬癸子丑寅卯七八九十") == 0


def test_one_replaced_character_is_half_a_substitution() -> None:
    """A Traditional/Simplified variant that conversion left behind must not split a story."""

    def count(a: str, b: str) -> int:
        ta, tb = token_hashes(a).tolist(), token_hashes(b).tolist()
        return substitutions(ta, tb, 8, 2, whole=True, flag=CJK_FLAG)

    assert count("背包客走遍全国各地的故事", "揹包客走遍全国各地的故事") == 0
    assert count("背包客走遍全国各地的故事和风景", "揹包客走遍全国各地的故事與风景") == 1


def test_band_store_finds_removes_and_compacts() -> None:
    store = BandStore(buffer_items=4)
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 2**63, size=(20, 8), dtype=np.uint64)
    for slot in range(20):
        store.add(slot, keys[slot])
    assert store.segment_count() >= 1 and len(store) == 20
    assert store.query(keys[3]) == {3: 8}
    assert store.query(keys[18]) == {18: 8}  # still in the buffer
    store.remove(3)
    store.remove(18)
    assert store.query(keys[3]) == {} and store.query(keys[18]) == {}
    for slot in range(20):
        store.remove(slot)
    assert len(store) == 0 and store.segment_count() == 0
    store.add_many(np.array([30, 31], dtype=np.uint32), np.stack([keys[0], keys[0]]))
    assert store.query(keys[0][:3]) == {30: 3, 31: 3}
