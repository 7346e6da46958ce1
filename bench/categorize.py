"""Sections benchmark: channel feeds train the classifier, a mixed feed is filed.

Data: ``$FEEDHUB_CORPUS/classification-zh-news-titles`` (THUCNews titles, 10 classes x 300).
For each seed the titles of each class are shuffled; 100 per class form the *mixed feed* (no
source section, no label seen), and the first 50 or 200 of the rest form that class's *channel
feed* (a source whose ``section:`` is the class). The categorizer is trained from the channel
items exactly as the pipeline trains it (label = the channel's section) and files each item of
the mixed feed through ``Categorizer.categorize``. See bench/CATEGORIZE.md.

    .venv/bin/python bench/categorize.py                 # 5 seeds, sizes 50 and 200
    .venv/bin/python bench/categorize.py --semantic      # also the sentence-encoder variants
    .venv/bin/python bench/categorize.py --seeds 1 --json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # throughput is measured on one thread

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import rjieba  # noqa: E402

from feedhub.core.categorize import (  # noqa: E402
    Categorizer,
    CategorizeSettings,
    ItemText,
    Rule,
    SectionTree,
)
from feedhub.core.classify import Model, ModelParams, TextEncoder  # noqa: E402

DATA = Path("classification-zh-news-titles") / "thucnews_titles_sample.jsonl"
TEST_PER_CLASS = 100
SIZES = (50, 200)
PIPELINE_BATCH = 500  # items per categorize_many call, as feedhub.sections.Filer files them

# Keyword rules an operator could plausibly write for these sections. Written from general
# knowledge of each section before any rule was scored on any split; never tuned on test items.
KEYWORDS = {
    "财经": "经济 银行 央行 利率 通胀 CPI GDP 人民币 汇率 贷款 信贷 保险 理财 外贸 出口 进口 财政 "
    "税收 投资 消费 发改委 加息 降息 黄金 油价 期货 企业 产业 银监会 保监会 外汇 债券 金融",
    "股票": "A股 股市 大盘 沪指 深成指 涨停 跌停 板块 个股 基金 牛市 熊市 证券 券商 收盘 开盘 沪深 "
    "创业板 中小板 IPO 增持 减持 评级 研报 股价 股份 港股 美股 指数 市值 新股 权证 庄家",
    "房产": "楼市 房价 房地产 地产 楼盘 开发商 二手房 新房 住宅 商品房 限购 公积金 房贷 保障房 "
    "别墅 户型 地块 土地 均价 平米 物业 置业 购房 业主 开盘价 售楼 样板间 廉租房",
    "教育": "高考 考研 中考 大学 高校 学生 留学 考生 招生 录取 教育 学校 教师 培训 雅思 托福 "
    "四六级 志愿 分数线 研究生 毕业生 学位 校园 家长 中小学 幼儿园 课程 考试 自主招生 GRE",
    "科技": "手机 互联网 苹果 iPhone 谷歌 微软 电脑 芯片 软件 3G 电信 运营商 网站 科学家 卫星 "
    "航天 数码 相机 笔记本 iPad 腾讯 百度 阿里巴巴 Facebook 英特尔 诺基亚 移动 联通 上网 宽带",
    "社会": "男子 女子 民警 警方 死亡 车祸 事故 村民 法院 判刑 老人 小偷 抢劫 坠楼 火灾 溺亡 "
    "司机 乘客 被打 砍 救 丈夫 妻子 儿子 女儿 小伙 老汉 网友 猥亵 诈骗",
    "时政": "国务院 总理 主席 外交部 部长 政府 会见 会谈 人大 政协 中央 官员 总统 选举 军方 联合国 "
    "朝鲜 伊朗 反腐 书记 省委 两会 外长 首相 大使 国防 军队 峰会 领导人 温家宝 胡锦涛",
    "体育": "足球 篮球 NBA CBA 中超 比赛 冠军 球队 主帅 教练 球员 进球 联赛 世界杯 奥运 网球 火箭 "
    "湖人 姚明 皇马 巴萨 曼联 赛季 决赛 半决赛 击败 亚冠 欧冠 英超 意甲 西甲 德甲 国足",
    "游戏": "游戏 网游 玩家 魔兽 副本 公测 内测 服务器 新服 开服 资料片 装备 攻略 激活码 "
    "网易 盛大 巨人 九城 暴雪 Xbox PS3 Wii 任天堂 单机 新手卡 礼包 职业 技能 宠物",
    "娱乐": "明星 电影 导演 演员 影片 票房 电视剧 歌手 演唱会 专辑 绯闻 恋情 离婚 婚礼 红毯 首映 "
    "综艺 主演 新片 剧组 影后 影帝 娱乐 选秀 好莱坞 金像奖 奥斯卡 MV 戛纳 嫁",
}
RULES = tuple(Rule(s, keywords=dict.fromkeys(kw.split(), 1.0)) for s, kw in KEYWORDS.items())


@dataclass
class Split:
    train: list[tuple[ItemText, str]]  # channel items, labelled by their channel's section
    test: list[ItemText]  # the mixed feed
    truth: list[str]


def load(corpus: Path) -> list[dict[str, str]]:
    path = corpus / DATA
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def split_rows(
    rows: Sequence[dict[str, str]], seed: int, per_class: int
) -> tuple[list[tuple[dict[str, str], str]], list[dict[str, str]]]:
    """The channel rows with their channel's section, and the mixed feed's rows in feed order."""
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        by_label.setdefault(row["label"], []).append(row)
    rng = random.Random(seed)
    train: list[tuple[dict[str, str], str]] = []
    test: list[dict[str, str]] = []
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        test += items[:TEST_PER_CLASS]
        train += [(row, label) for row in items[TEST_PER_CLASS : TEST_PER_CLASS + per_class]]
    order = list(range(len(test)))
    rng.shuffle(order)  # a mixed feed is mixed
    return train, [test[i] for i in order]


def split(rows: Sequence[dict[str, str]], seed: int, per_class: int) -> Split:
    train, test = split_rows(rows, seed, per_class)
    return Split(
        train=[
            (ItemText(row["title"], text=row["text"], source_section=label), label)
            for row, label in train
        ],
        test=[ItemText(row["title"], text=row["text"]) for row in test],
        truth=[row["label"] for row in test],
    )


def macro_f1(truth: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    scores = []
    for c in labels:
        tp = sum(1 for t, p in zip(truth, pred, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(truth, pred, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(truth, pred, strict=True) if t == c and p != c)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


class CachedEncoder:
    """Remembers vectors by text so that seeds and variants share one encoding of a title."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}  # type: ignore[type-arg]

    @property
    def name(self) -> str:
        return self.inner.name

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # type: ignore[type-arg]
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.encode(missing), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts])


def baseline(sp: Split) -> list[str]:
    """The calibration baseline: a plain linear SVM on jieba words + character 1-2-grams."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union
    from sklearn.svm import LinearSVC

    def words(s: str) -> list[str]:
        return [w for w in rjieba.cut(s) if w.strip()]

    union = make_union(
        TfidfVectorizer(tokenizer=words, token_pattern=None),
        TfidfVectorizer(analyzer="char", ngram_range=(1, 2)),
    )
    x = union.fit_transform([i.title for i, _ in sp.train])
    clf = LinearSVC().fit(x, [label for _, label in sp.train])
    return list(clf.predict(union.transform([i.title for i in sp.test])))


@dataclass
class Variant:
    name: str
    rules: bool = False
    model: bool = True
    self_training: float = 0.0
    semantic: bool = False
    cascade: float | None = None  # ModelParams.cascade_margin (None: full model for every item)


@dataclass
class Result:
    acc: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    f1: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    rate: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    batched: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    confusion: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # type: ignore[type-arg]
    extra: dict[str, list[float]] = field(default_factory=dict)


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class Counting:
    """Counts the texts an encoder is asked for: the share of items the cascade sends on."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner = inner
        self.n = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # type: ignore[type-arg]
        self.n += len(texts)
        return self.inner.encode(texts)


def encoder_rates(
    model: Model,
    sp: Split,
    rules: Sequence[Rule],
    tree: SectionTree,
    settings: CategorizeSettings,
    passes: int = 1,
) -> tuple[float, float, float]:
    """Items/s one at a time and in pipeline batches, and the share of items encoded.

    Each pass gets a new encoder (nothing cached by title) whose token cache has seen only
    the channel items, as after training; the fastest of ``passes`` passes counts.
    """
    from feedhub.core.semantic import UniversalSentenceEncoder

    rates = []
    share = 0.0
    for batched in (False, True):
        best = float("inf")
        for _ in range(passes):
            enc = UniversalSentenceEncoder(threads=1)
            enc.encode([item.title for item, _ in sp.train])
            counting = Counting(enc)
            cat = Categorizer(rules, tree, settings, model.with_encoder(counting))
            if batched:
                dt = timed(
                    lambda c=cat: [
                        c.categorize_many(sp.test[i : i + PIPELINE_BATCH])
                        for i in range(0, len(sp.test), PIPELINE_BATCH)
                    ],
                    1,
                )
            else:
                dt = timed(lambda c=cat: [c.categorize(i) for i in sp.test], 1)
            best = min(best, dt)
            share = counting.n / len(sp.test)
        rates.append(len(sp.test) / best)
    return rates[0], rates[1], share


def run(args: argparse.Namespace) -> Result:
    rows = load(Path(args.corpus))
    labels = sorted({r["label"] for r in rows})
    tree = SectionTree.flat(labels)
    settings = CategorizeSettings(fallback=None)
    variants = [
        Variant("rules only (cold start)", rules=True, model=False),
        Variant("model", rules=False),
        Variant("model + rules", rules=True),
        Variant("model + self-training", self_training=0.5),
        Variant("model + self-training + rules", rules=True, self_training=0.5),
    ]
    encoder: CachedEncoder | None = None
    if args.semantic:
        from feedhub.core.semantic import UniversalSentenceEncoder

        encoder = CachedEncoder(UniversalSentenceEncoder(threads=1))
        margin = ModelParams().cascade_margin
        variants += [
            Variant("model + USE", semantic=True),
            Variant("model + USE + rules", rules=True, semantic=True),
            Variant("model + USE cascade", semantic=True, cascade=margin),
            Variant("model + USE cascade + rules", rules=True, semantic=True, cascade=margin),
        ]
    if args.variants is not None:
        variants = [v for v in variants if v.name in args.variants]
    res = Result()
    index = {c: i for i, c in enumerate(labels)}
    for seed in args.seeds:
        for size in args.sizes:
            sp = split(rows, seed, size)
            record(res, "baseline: LinearSVC words+char1-2", size, sp.truth, baseline(sp), labels)
            for v in variants:
                t0 = time.perf_counter()
                model = None
                if v.model:
                    model = Model.train(
                        sp.train,
                        labels,
                        params=ModelParams(self_training=v.self_training, cascade_margin=v.cascade),
                        unlabeled=sp.test if v.self_training else (),
                        encoder=encoder if v.semantic else None,
                    )
                res.extra.setdefault(f"train seconds: {v.name} @{size}", []).append(
                    time.perf_counter() - t0
                )
                cat = Categorizer(RULES if v.rules else (), tree, settings, model)
                pred = [d.section for d in map(cat.categorize, sp.test)]
                record(res, v.name, size, sp.truth, pred, labels)
                key = (v.name, size)
                m = res.confusion.setdefault(key, np.zeros((len(labels),) * 2, dtype=int))
                for t, p in zip(sp.truth, pred, strict=True):
                    m[index[t], index[p]] += 1
                if not v.semantic:
                    dt = timed(lambda c=cat, s=sp: [c.categorize(i) for i in s.test], 3)
                    res.rate.setdefault(key, []).append(len(sp.test) / dt)
                elif model is not None and encoder is not None:
                    if v.cascade is None and seed != args.seeds[0]:
                        continue  # the full model is slow: its speed is taken on one seed
                    rules = RULES if v.rules else ()
                    rates = encoder_rates(model, sp, rules, tree, settings, args.passes)
                    res.rate.setdefault(key, []).append(rates[0])
                    res.batched.setdefault(key, []).append(rates[1])
                    res.extra.setdefault(f"share encoded: {v.name} @{size}", []).append(rates[2])
            for moved in args.misfiled or ():
                pipeline_training(
                    res, rows, seed, size, moved, labels, encoder, args.exclude_margin
                )
            if args.pipeline:
                through_pipeline(res, rows, seed, size, labels, args.semantic, args.passes)
            print(f"seed {seed} size {size} done", file=sys.stderr, flush=True)
    return res


def move(sp: Split, per_channel: int, seed: int) -> list[bool]:
    """Relabel ``per_channel`` items of each channel as another (random) channel's: items an
    operator's channel carries although they belong elsewhere. Returns which were moved."""
    rng = random.Random(seed + 1000)
    labels = sorted({label for _, label in sp.train})
    moved = [False] * len(sp.train)
    for label in labels:
        members = [i for i, (_, lab) in enumerate(sp.train) if lab == label and not moved[i]]
        for i in rng.sample(members, min(per_channel, len(members))):
            other = rng.choice([x for x in labels if x != label])
            item = sp.train[i][0]
            sp.train[i] = (ItemText(item.title, text=item.text, source_section=other), other)
            moved[i] = True
    return moved


def pipeline_training(
    res: Result,
    rows: Sequence[dict[str, str]],
    seed: int,
    size: int,
    per_channel: int,
    labels: list[str],
    encoder: TextEncoder | None,
    exclude_margin: float | None = None,
) -> None:
    """The cascade (or, without --semantic, the sparse model) with rules, trained as
    ``feedhub.sections.train`` trains it: channel items that models which never saw them place
    clearly elsewhere (``sections.misfiled``, the shipped ``exclude_margin``) are left out."""
    from feedhub.sections import misfiled
    from feedhub.settings import CategorizeSettings as Shipped

    sp = split(rows, seed, size)
    moved = move(sp, per_channel, seed) if per_channel else [False] * len(sp.train)
    tree = SectionTree.flat(labels)
    settings = CategorizeSettings(fallback=None)
    params = ModelParams()
    kind = "USE cascade" if encoder is not None else "model"
    margin = Shipped().exclude_margin if exclude_margin is None else exclude_margin
    left_out = misfiled(sp.train, [False] * len(sp.train), labels, params, margin, encoder)
    where = f"{per_channel} per channel moved" if per_channel else "clean channels"
    for name, drop in (("all kept", set()), ("misfiled left out", left_out)):
        if not per_channel and not drop:
            continue  # the clean channels with nothing left out: the variants above
        kept = [pair for i, pair in enumerate(sp.train) if i not in drop]
        model = Model.train(kept, labels, params=params, encoder=encoder)
        cat = Categorizer(RULES, tree, settings, model)
        pred = [d.section for d in map(cat.categorize, sp.test)]
        record(res, f"{kind} + rules, {where}, {name}", size, sp.truth, pred, labels)
    caught = sum(moved[i] for i in left_out)
    tag = f"@{size}, {where}"
    res.extra.setdefault(f"left out as misfiled, correctly labelled {tag}", []).append(
        len(left_out) - caught
    )
    if per_channel:
        res.extra.setdefault(f"left out as misfiled, moved (of {sum(moved)}) {tag}", []).append(
            caught
        )


def through_pipeline(
    res: Result,
    rows: Sequence[dict[str, str]],
    seed: int,
    size: int,
    labels: list[str],
    semantic: bool,
    passes: int,
) -> None:
    """The same split served as feeds and filed by the real pipeline (categorize_pipeline);
    its first filing after training is timed ``passes`` times."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support_feedserver
    import categorize_pipeline

    encoder = "use" if semantic else "none"
    train, test = split_rows(rows, seed, size)
    out = categorize_pipeline.run(train, test, labels, encoder, seed, passes)
    name = f"real pipeline: poll, train, file (encoder: {encoder})"
    record(res, name, size, out.truth, out.pred, labels)
    key = (name, size)
    m = res.confusion.setdefault(key, np.zeros((len(labels),) * 2, dtype=int))
    index = {c: i for i, c in enumerate(labels)}
    for t, p in zip(out.truth, out.pred, strict=True):
        m[index[t], index[p]] += 1
    res.rate.setdefault(key, []).append(out.filed / out.filing_seconds)
    for what, value in (
        ("poll seconds", out.poll_seconds),
        ("train seconds", out.train_seconds),
        ("model load seconds", out.load_seconds),
        ("filing seconds", out.filing_seconds),
        ("channel items left out as misfiled", out.left_out),
        ("share of channel items filed in their channel", out.channel_kept),
    ):
        res.extra.setdefault(f"{what}: {name} @{size}", []).append(value)


def record(
    res: Result, name: str, size: int, truth: list[str], pred: list[str], labels: list[str]
) -> None:
    res.acc.setdefault((name, size), []).append(
        sum(t == p for t, p in zip(truth, pred, strict=True)) / len(truth)
    )
    res.f1.setdefault((name, size), []).append(macro_f1(truth, pred, labels))


def spread(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {sd:.3f} [{min(values):.3f}-{max(values):.3f}]"


def report(res: Result, args: argparse.Namespace, labels: list[str]) -> None:
    names = list(dict.fromkeys(name for name, _ in res.acc))
    width = max(38, *map(len, names))
    print(f"seeds {args.seeds}; mixed feed {TEST_PER_CLASS} per class; mean ± sd [min-max]\n")
    for size in args.sizes:
        print(f"== {size} channel items per class ==")
        print(f"{'variant':{width}} {'accuracy':28} {'macro-F1':28} items/s")
        for name in names:
            if (name, size) not in res.acc:
                continue
            rate = res.rate.get((name, size))
            shown = f"{statistics.median(rate):,.0f}" if rate else "-"
            batched = res.batched.get((name, size))
            if batched:
                shown += f" ({statistics.median(batched):,.0f} batched)"
            acc, f1 = spread(res.acc[name, size]), spread(res.f1[name, size])
            print(f"{name:{width}} {acc:28} {f1:28} {shown}")
        print()
    for key, m in res.confusion.items():
        if key[0] not in args.confusion:
            continue
        print(f"confusion (rows: truth, columns: filed), {key[0]} @{key[1]}, all seeds summed")
        print("      " + " ".join(f"{c:>4}" for c in labels))
        for c, row in zip(labels, m, strict=True):
            print(f"{c:4}  " + " ".join(f"{v:6d}" for v in row))
        print()
    for name, values in res.extra.items():
        print(f"{name}: {statistics.fmean(values):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=os.environ.get("FEEDHUB_CORPUS"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103, 104, 105])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--semantic", action="store_true", help="add the USE sentence encoder")
    ap.add_argument(
        "--confusion",
        nargs="*",
        default=["model + self-training + rules"],
        help="variants whose confusion matrix is printed",
    )
    ap.add_argument(
        "--passes",
        type=int,
        default=1,
        help="timed passes per encoder variant, each with a new encoder, and of the pipeline's "
        "filing, each from the trained database with a new filer (the fastest counts)",
    )
    ap.add_argument(
        "--variants",
        nargs="*",
        metavar="NAME",
        help="run only these variants (names as printed; the baseline always runs)",
    )
    ap.add_argument(
        "--misfiled",
        type=int,
        nargs="*",
        metavar="N",
        help="also train as the pipeline does (channel items that judging models place clearly "
        "elsewhere left out), on the clean channels and with N items of each channel moved to "
        "another channel (default: 0 5)",
    )
    ap.add_argument(
        "--exclude-margin",
        type=float,
        help="--misfiled: categorize.exclude_margin instead of the shipped default",
    )
    ap.add_argument(
        "--pipeline",
        action="store_true",
        help="also serve the split as feeds on 127.0.0.1 and let the real pipeline poll, train "
        "and file it (with the encoder when --semantic)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.misfiled == []:
        args.misfiled = [0, 5]
    if not args.corpus:
        ap.error("set FEEDHUB_CORPUS or pass --corpus")
    res = run(args)
    labels = sorted({r["label"] for r in load(Path(args.corpus))})
    if args.json:
        out = {
            f"{n}@{s}": {
                "accuracy": res.acc[n, s],
                "macro_f1": res.f1[n, s],
                "items_per_s": res.rate.get((n, s), []),
                "items_per_s_batched": res.batched.get((n, s), []),
            }
            for n, s in res.acc
        }
        json.dump({"seeds": args.seeds, "results": out, "extra": res.extra}, sys.stdout, indent=1)
        print()
    else:
        report(res, args, labels)


if __name__ == "__main__":
    main()
