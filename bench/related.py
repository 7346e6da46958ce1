"""Related reading benchmark: precision@5 on labelled titles, time per new story at 10k and 100k
stories in the window, and memory. See bench/RELATED.md.

    .venv/bin/python bench/related.py                    # 3 seeds, windows of 10k and 100k
    .venv/bin/python bench/related.py --seeds 1 --sizes 10000 --json
    .venv/bin/python bench/related.py --only precision

Needs FEEDHUB_CORPUS (or --corpus). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # times are measured on one thread

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from categorize import RULES, CachedEncoder  # noqa: E402
from feedhub.core.categorize import (  # noqa: E402
    Categorizer,
    CategorizeSettings,
    ItemText,
    SectionTree,
)
from feedhub.core.classify import Model, ModelParams  # noqa: E402
from feedhub.core.related import (  # noqa: E402
    RelatedDoc,
    RelatedIndex,
    RelatedParams,
    terms,
)

DATA = Path("classification-zh-news-titles") / "thucnews_titles_sample.jsonl"
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
MIXED_PER_CLASS = 100
CHANNEL_PER_CLASS = 200
CHANNELS_PER_CLASS = 4  # channel sources per section
MIXED_SOURCES = 5
SPAN_DAYS = 29.0  # published times spread over this much of the 30-day window
PROBES = 200  # new stories timed per window size
SYNTH_SOURCES = 300


@dataclass
class Row:
    id: str
    title: str
    label: str


def load(corpus: Path) -> list[Row]:
    path = corpus / DATA
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [Row(r["id"], r["title"], r["label"]) for r in rows]


# --- precision ------------------------------------------------------------------------------


@dataclass
class Setup:
    docs: list[RelatedDoc]  # every story, section as the pipeline would know it
    truth: dict[str, str]  # story id -> true label (read only when scoring)
    mixed: list[str]  # story ids of the mixed feed: the ones scored
    true_sections: dict[str, str]  # for the upper bound only
    categorizer_accuracy: float


def setup(rows: Sequence[Row], seed: int, encoder: CachedEncoder | None) -> Setup:
    """Channel items keep their channel's section; mixed-feed items get the categorizer's
    (model + self-training + rules; with ``encoder``, model + sentence encoder + rules, the
    two best configurations of bench/CATEGORIZE.md)."""
    rng = random.Random(seed)
    by_label: dict[str, list[Row]] = {}
    for row in sorted(rows, key=lambda r: r.id):
        by_label.setdefault(row.label, []).append(row)
    labels = sorted(by_label)
    channel: list[tuple[Row, str]] = []  # (row, source id)
    mixed: list[Row] = []
    for label in labels:
        items = by_label[label]
        rng.shuffle(items)
        mixed += items[:MIXED_PER_CLASS]
        for i, row in enumerate(items[MIXED_PER_CLASS : MIXED_PER_CLASS + CHANNEL_PER_CLASS]):
            channel.append((row, f"channel-{label}-{i % CHANNELS_PER_CLASS}"))
    rng.shuffle(mixed)
    model = Model.train(
        [(ItemText(r.title, source_section=r.label), r.label) for r, _ in channel],
        labels,
        params=ModelParams(self_training=0.0 if encoder else 0.5),
        unlabeled=() if encoder else [ItemText(r.title) for r in mixed],
        encoder=encoder,
    )
    cat = Categorizer(RULES, SectionTree.flat(labels), CategorizeSettings(), model)
    decisions = cat.categorize_many([ItemText(r.title) for r in mixed])
    filed = [d.section for d in decisions]
    docs: list[RelatedDoc] = []

    def when() -> datetime:
        return NOW - timedelta(days=rng.uniform(0.0, SPAN_DAYS))

    for row, source in channel:
        docs.append(RelatedDoc(row.id, row.title, "", when(), (source,), row.label))
    for i, (row, section) in enumerate(zip(mixed, filed, strict=True)):
        docs.append(
            RelatedDoc(
                row.id,
                row.title,
                "",
                when(),
                (f"mixed-{i % MIXED_SOURCES}",),
                section,
                decisions[i].confidence,
            )
        )
    truth = {r.id: r.label for r in rows}
    acc = sum(truth[r.id] == s for r, s in zip(mixed, filed, strict=True)) / len(mixed)
    return Setup(docs, truth, [r.id for r in mixed], {r.id: r.label for r in rows}, acc)


def precision(index: RelatedIndex, su: Setup, limit: int) -> tuple[float, float]:
    """Mean precision@limit over the mixed feed, and the mean list length."""
    hits = 0
    length = 0
    for sid in su.mixed:
        lst = index.related(sid, NOW)
        hits += sum(su.truth[r.story_id] == su.truth[sid] for r in lst)
        length += len(lst)
    return hits / (limit * len(su.mixed)), length / len(su.mixed)


def run_precision(args: argparse.Namespace, rows: Sequence[Row]) -> dict[str, Any]:
    base = RelatedParams()
    variants: list[tuple[str, RelatedParams, str]] = [
        ("no section boost", dataclasses.replace(base, same_section_boost=0.0), "filed"),
        (
            "no boost, no recency",
            dataclasses.replace(base, same_section_boost=0.0, half_life_days=1e9),
            "filed",
        ),
    ]
    for boost in args.boosts:
        variants.append(
            (
                f"boost {boost:g}, filed sections",
                dataclasses.replace(base, same_section_boost=boost),
                "filed",
            )
        )
    variants.append(("default params, filed sections", base, "filed"))
    variants.append(("default params, true sections (upper bound)", base, "true"))
    variants.append(("default params, filed, incremental adds", base, "incremental"))
    out: dict[str, Any] = {"seeds": args.seeds, "variants": {}, "categorizer_accuracy": []}
    encoder = None
    if args.semantic:
        from feedhub.core.semantic import UniversalSentenceEncoder

        encoder = CachedEncoder(UniversalSentenceEncoder(threads=1))
    for seed in args.seeds:
        su = setup(rows, seed, encoder)
        out["categorizer_accuracy"].append(su.categorizer_accuracy)
        for name, params, mode in variants:
            index = RelatedIndex(params)
            if mode == "incremental":
                # stories arrive in published order; lists are only what ``add`` returned
                for doc in sorted(su.docs, key=lambda d: (d.published, d.story_id)):
                    index.add(doc, doc.published)
            else:
                docs = su.docs
                if mode == "true":
                    docs = [
                        dataclasses.replace(d, section=su.true_sections[d.story_id]) for d in docs
                    ]
                index.add_many(docs)
            p, n = precision(index, su, params.limit)
            rec = out["variants"].setdefault(name, {"precision_at_5": [], "mean_length": []})
            rec["precision_at_5"].append(p)
            rec["mean_length"].append(n)
        print(f"precision: seed {seed} done", file=sys.stderr, flush=True)
    return out


# --- speed and memory -----------------------------------------------------------------------


def synthetic(rows: Sequence[Row], n: int, seed: int) -> list[RelatedDoc]:
    """Pseudo-titles: each a section's words drawn by their frequency in that section's titles,
    as many words as a real title of the corpus has."""
    rng = random.Random(seed)
    pools: dict[str, tuple[list[str], list[int]]] = {}
    lengths: list[int] = []
    by_label: dict[str, Counter[str]] = {}
    for row in rows:
        words = [w for w in rjieba_words(row.title)]
        lengths.append(max(2, len(words)))
        by_label.setdefault(row.label, Counter()).update(words)
    for label, counts in sorted(by_label.items()):
        ordered = sorted(counts.items())
        pools[label] = ([w for w, _ in ordered], [c for _, c in ordered])
    labels = sorted(pools)
    docs = []
    for i in range(n):
        label = labels[i % len(labels)]
        words, weights = pools[label]
        title = "".join(rng.choices(words, weights, k=rng.choice(lengths)))
        published = NOW - timedelta(days=rng.uniform(0.0, SPAN_DAYS))
        source = f"src-{rng.randrange(SYNTH_SOURCES)}"
        docs.append(RelatedDoc(f"synthetic-{i}", title, "", published, (source,), label))
    return docs


def rjieba_words(title: str) -> list[str]:
    return list(terms(title, "", 1.0, 0))


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_speed(args: argparse.Namespace, rows: Sequence[Row], size: int) -> dict[str, Any]:
    docs = synthetic(rows, size, seed=size)
    terms("预热 warm-up", "", 1.0, 0)  # the segmenter's dictionary is not the index's memory
    gc.collect()
    rss0 = rss_bytes()
    index = RelatedIndex()
    t0 = time.perf_counter()
    index.add_many(docs)
    build_s = time.perf_counter() - t0
    gc.collect()
    rss_delta = rss_bytes() - rss0
    t0 = time.perf_counter()
    for doc in docs:
        index.related(doc.story_id, NOW)  # every story gets its list, as in steady state
    lists_s = time.perf_counter() - t0
    gc.collect()
    rss_lists = rss_bytes() - rss0
    rng = random.Random(size + 1)
    probes = rng.sample(list(rows), PROBES)
    query_ms: list[float] = []
    add_ms: list[float] = []
    refreshed: list[int] = []
    for i, row in enumerate(probes):
        doc = RelatedDoc(
            f"probe-{i}", row.title, "", NOW, (f"src-{rng.randrange(SYNTH_SOURCES)}",), row.label
        )
        t0 = time.perf_counter()
        index.related(doc, NOW)  # the list alone, nothing kept
        query_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        changes = index.add(doc, NOW)  # list + refresh of older lists + indexing
        add_ms.append((time.perf_counter() - t0) * 1000)
        refreshed.append(len(changes.lists) - 1)
    t0 = time.perf_counter()
    evicted = index.evict(NOW + timedelta(days=2))
    evict_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "stories": size,
        "build_seconds": round(build_s, 2),
        "lists_for_all_seconds": round(lists_s, 1),
        "rss_delta_index_mib": round(rss_delta / 2**20, 1),
        "rss_delta_with_lists_mib": round(rss_lists / 2**20, 1),
        "related_ms_median": round(statistics.median(query_ms), 2),
        "related_ms_p95": round(sorted(query_ms)[int(0.95 * len(query_ms))], 2),
        "add_ms_median": round(statistics.median(add_ms), 2),
        "add_ms_p95": round(sorted(add_ms)[int(0.95 * len(add_ms))], 2),
        "add_ms_max": round(max(add_ms), 2),
        "older_lists_refreshed_per_add": round(statistics.fmean(refreshed), 2),
        "evict_2_days_seconds": round(evict_s, 2),
        "evicted": len(evicted.removed),
        "lists_recomputed_by_evict": len(evicted.lists),
        "stats": index.stats(),
    }
    if args.tracemalloc:
        del index
        gc.collect()
        tracemalloc.start()
        index = RelatedIndex()
        index.add_many(docs)
        out["tracemalloc_index_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
        tracemalloc.stop()
    print(f"speed: {size} done", file=sys.stderr, flush=True)
    return out


def spread(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {sd:.3f} [{min(values):.3f}-{max(values):.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=os.environ.get("FEEDHUB_CORPUS"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--boosts", type=float, nargs="*", default=[0.5, 2.0, 4.0])
    ap.add_argument("--only", choices=["precision", "speed"])
    ap.add_argument("--semantic", action="store_true", help="categorizer with the sentence encoder")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace the index build")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.corpus or not (Path(args.corpus) / DATA).is_file():
        print(
            f"corpus not found: set FEEDHUB_CORPUS (or --corpus) to a folder with {DATA}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    rows = load(Path(args.corpus))
    result: dict[str, Any] = {"params": dataclasses.asdict(RelatedParams())}
    if args.only != "speed":
        result["precision"] = run_precision(args, rows)
    if args.only != "precision":
        result["speed"] = [run_speed(args, rows, n) for n in args.sizes]
    if args.json:
        json.dump(result, sys.stdout, indent=1, ensure_ascii=False)
        print()
        return
    print(f"params: {result['params']}\n")
    if "precision" in result:
        pr = result["precision"]
        print(
            f"seeds {pr['seeds']}; mixed feed {MIXED_PER_CLASS} per class scored; "
            f"categorizer accuracy {spread(pr['categorizer_accuracy'])}"
        )
        print(f"{'variant':48} {'precision@5':30} mean length")
        for name, rec in pr["variants"].items():
            print(
                f"{name:48} {spread(rec['precision_at_5']):30} "
                f"{statistics.fmean(rec['mean_length']):.2f}"
            )
        print()
    for rec in result.get("speed", []):
        print(f"== window of {rec['stories']:,} stories ==")
        for key, value in rec.items():
            if key != "stories":
                print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
