"""Near-duplicate detection benchmark: accuracy on labelled reposts, the corpus's multi-outlet
sets, and speed and memory against a window of 100,000 items. See bench/DEDUP.md.

    .venv/bin/python bench/dedup.py                # everything (a few minutes)
    .venv/bin/python bench/dedup.py --quick        # 10,000-item window, smaller sets
    .venv/bin/python bench/dedup.py --json         # one JSON document on stdout
    .venv/bin/python bench/dedup.py --only labelled --show 20

Needs FEEDHUB_CORPUS (or --corpus). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import gc
import itertools
import json
import os
import random
import re
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import dedup_data  # noqa: E402
from feedhub.core.dedupe import (  # noqa: E402
    DedupeSettings,
    Doc,
    Fingerprint,
    StoryIndex,
    compare,
    fingerprint,
)
from feedhub.core.parse import parse_feed  # noqa: E402
from feedhub.core.textnorm import match_title  # noqa: E402
from feedhub.errors import ParseError  # noqa: E402

TARGETS = {"precision": 0.99, "recall": 0.95, "ms_per_item": 5.0}


# --- clustering and scoring -----------------------------------------------------------------------


@dataclass
class Clustered:
    story: dict[str, str]  # key -> story id
    fingerprints: dict[str, Fingerprint]
    fingerprint_ms: list[float]
    match_ms: list[float]
    cpu_ms: list[float]  # fingerprint + match + add, CPU time of this process
    reasons: Counter[str]
    joined: dict[str, str]  # key -> the key it matched


def cluster(
    docs: Sequence[Doc], settings: DedupeSettings, index: StoryIndex | None = None
) -> Clustered:
    """Feed docs in time order: each joins the story of its best match, else starts one."""
    index = index or StoryIndex(settings)
    out = Clustered({}, {}, [], [], [], Counter(), {})
    for doc in sorted(docs, key=lambda d: (d.published, d.key)):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fp = fingerprint(doc, settings)
        t1 = time.perf_counter()
        found = index.match(fp, doc.published)
        story = found.story_id if found else doc.key
        index.add(doc.key, story, fp, doc.published)
        t2 = time.perf_counter()
        out.cpu_ms.append((time.process_time() - c0) * 1e3)
        out.fingerprint_ms.append((t1 - t0) * 1e3)
        out.match_ms.append((t2 - t1) * 1e3)
        out.reasons[found.reason if found else "new"] += 1
        out.story[doc.key] = story
        if found:
            out.joined[doc.key] = found.key
        out.fingerprints[doc.key] = fp
    return out


def pairs_of(groups: Iterable[list[str]]) -> set[tuple[str, str]]:
    result: set[tuple[str, str]] = set()
    for members in groups:
        result.update(itertools.combinations(sorted(members), 2))
    return result


def group(assignment: dict[str, str]) -> list[list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for key, story in assignment.items():
        groups[story].append(key)
    return list(groups.values())


def prf(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, float | int]:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "true_pairs": len(truth),
        "predicted_pairs": len(predicted),
        "tp": tp,
        "fp": len(predicted - truth),
        "fn": len(truth - predicted),
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def timing(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean_ms": round(sum(values) / max(1, len(values)), 3),
        "p50_ms": round(percentile(values, 0.5), 3),
        "p99_ms": round(percentile(values, 0.99), 3),
    }


# --- the labelled benchmark -----------------------------------------------------------------------


def to_doc(item: dedup_data.BenchItem) -> Doc:
    return Doc(item.key, item.source_id, item.title, item.text, item.link, item.published)


def run_labelled(
    corpus: Path, settings: DedupeSettings, args: argparse.Namespace
) -> dict[str, Any]:
    t0 = time.perf_counter()
    items = dedup_data.build(corpus, seed=args.seed, limit=1000 if args.quick else None)
    build_s = time.perf_counter() - t0
    by_key = {i.key: i for i in items}
    result = cluster([to_doc(i) for i in items], settings)
    truth_groups: dict[str, list[str]] = defaultdict(list)
    for item in items:
        truth_groups[item.label].append(item.key)
    truth = pairs_of(truth_groups.values())
    predicted = pairs_of(group(result.story))
    report: dict[str, Any] = {
        "items": len(items),
        "stories": len(truth_groups),
        "build_seconds": round(build_s, 1),
        "kinds": dict(Counter(f"{i.lang}:{i.kind}" for i in items)),
        "overall": prf(predicted, truth),
        "reasons": dict(result.reasons),
        "fingerprint": timing(result.fingerprint_ms),
        "match_add": timing(result.match_ms),
        "fingerprint_match_add_cpu": timing(result.cpu_ms),
    }
    for lang in ("zh", "en"):
        keys = {i.key for i in items if i.lang == lang}
        report[lang] = prf(
            {p for p in predicted if p[0] in keys}, {p for p in truth if p[0] in keys}
        )
    # Recall per edit: true pairs in which a repost carrying that edit takes part.
    per_edit: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a, b in truth:
        for edit in set(by_key[a].edits) | set(by_key[b].edits) | _kind_tag(by_key[a], by_key[b]):
            per_edit[edit][0] += 1
            per_edit[edit][1] += (a, b) in predicted
    report["recall_by_edit"] = {
        e: {"pairs": n, "recall": round(hit / n, 4)} for e, (n, hit) in sorted(per_edit.items())
    }
    # Hard negatives: was the variant merged with the item it was made from?
    merged: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for item in items:
        if item.kind in ("number-swap", "place-swap") and item.parent:
            total[item.kind] += 1
            merged[item.kind] += result.story[item.key] == result.story[item.parent]
    report["hard_negatives_merged"] = {k: f"{merged[k]}/{total[k]}" for k in sorted(total)}
    fp_pairs = sorted(predicted - truth)
    fn_pairs = sorted(truth - predicted)
    report["false_merge_kinds"] = dict(
        Counter(" + ".join(sorted({by_key[a].kind, by_key[b].kind})) for a, b in fp_pairs)
    )
    wrong_links = sorted(
        (k, m) for k, m in result.joined.items() if by_key[k].label != by_key[m].label
    )
    missed_links = sorted(
        (i.key, i.parent)
        for i in items
        if i.parent
        and i.kind in ("repost", "guid-churn")
        and result.story[i.key] != result.story[i.parent]
    )
    report["wrong_links"] = len(wrong_links)
    report["examples"] = {
        "wrong_links": [
            _explain(by_key, result, a, b, settings) for a, b in wrong_links[: args.show]
        ],
        "unjoined_reposts": [
            _explain(by_key, result, a, b, settings) for a, b in missed_links[: args.show]
        ],
        "false_merges": [
            _explain(by_key, result, a, b, settings) for a, b in fp_pairs[: args.show]
        ],
        "missed": [_explain(by_key, result, a, b, settings) for a, b in fn_pairs[: args.show]],
    }
    return report


def _kind_tag(a: dedup_data.BenchItem, b: dedup_data.BenchItem) -> set[str]:
    kinds = {a.kind, b.kind} - {"original", "repost"}
    if {a.kind, b.kind} == {"repost"}:
        kinds.add("repost-to-repost")
    return kinds


def _explain(
    by_key: dict[str, dedup_data.BenchItem],
    result: Clustered,
    a: str,
    b: str,
    settings: DedupeSettings,
) -> dict[str, Any]:
    verdict = compare(result.fingerprints[a], result.fingerprints[b], settings)
    return {
        "a": f"{a} [{by_key[a].kind} {','.join(by_key[a].edits)}] {by_key[a].title[:60]}",
        "b": f"{b} [{by_key[b].kind} {','.join(by_key[b].edits)}] {by_key[b].title[:60]}",
        "title_similarity": round(verdict.title_similarity, 3),
        "jaccard": round(verdict.text_similarity, 3),
        "containment": round(verdict.containment, 3),
        "facts_conflict": verdict.facts_conflict,
        "substitutions": verdict.substitutions,
        "sizes": [result.fingerprints[a].size, result.fingerprints[b].size],
    }


# --- the corpus's multi-outlet sets ---------------------------------------------------------------


def _feed_docs(folder: Path) -> list[Doc]:
    docs: list[Doc] = []
    for path in sorted(folder.glob("*.xml")):
        try:
            feed = parse_feed(
                path.read_bytes(),
                {},
                url="http://feed.invalid/",
                source_id=path.stem,
                now=dedup_data.PARSE_NOW,
                default_timezone="UTC",
            )
        except ParseError:
            continue
        for item in feed.items:
            published = item.published or dedup_data.PARSE_NOW
            text = item.content or item.summary or ""
            docs.append(
                Doc(
                    f"{path.stem}:{item.entry_id}",
                    path.stem,
                    item.title,
                    text,
                    item.link,
                    published,
                )
            )
    return docs


def _clusters_report(docs: list[Doc], result: Clustered, limit: int) -> list[list[str]]:
    by_key = {d.key: d for d in docs}
    multi = [sorted(g) for g in group(result.story) if len(g) > 1]
    multi.sort(key=len, reverse=True)
    return [[f"{by_key[k].source_id}: {by_key[k].title[:80]}" for k in g] for g in multi[:limit]]


def run_multi_outlet(
    corpus: Path, settings: DedupeSettings, args: argparse.Namespace
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, folder in (
        ("en_same_moment_headlines", "feeds-en-news-same-moment-2021-09-18-headlines"),
        ("zh_greatfire_2015", "feeds-zh-intl-chinese-2015-greatfire"),
    ):
        docs = _feed_docs(corpus / folder)
        result = cluster(docs, settings)
        groups = [g for g in group(result.story) if len(g) > 1]
        sources = [len({d.split(":")[0] for d in g}) for g in groups]
        report[name] = {
            "items": len(docs),
            "merged_groups": len(groups),
            "cross_source_groups": sum(1 for s in sources if s > 1),
            "reasons": dict(result.reasons),
            "groups": _clusters_report(docs, result, 50),
        }
    report["uci_news_aggregator"] = run_uci(corpus, settings, args)
    return report


def run_uci(corpus: Path, settings: DedupeSettings, args: argparse.Namespace) -> dict[str, Any]:
    path = corpus / "neardup-en-uci-news-aggregator-subset" / "uci-news-aggregator.first6366.csv"
    docs: list[Doc] = []
    label: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("STORY") or not row.get("TIMESTAMP"):
                continue  # the file's last record is cut short
            published = datetime.fromtimestamp(int(row["TIMESTAMP"]) / 1000, tz=UTC)
            docs.append(
                Doc(row["ID"], row["PUBLISHER"] or "", row["TITLE"], "", row["URL"], published)
            )
            label[row["ID"]] = row["STORY"]
    result = cluster(docs, settings)
    truth_groups: dict[str, list[str]] = defaultdict(list)
    for key, story in label.items():
        truth_groups[story].append(key)
    truth = pairs_of(truth_groups.values())
    predicted = pairs_of(group(result.story))
    titles = {d.key: match_title(d.title) for d in docs}
    same_headline = {p for p in truth if titles[p[0]] == titles[p[1]]}
    false = predicted - truth
    by_key = {d.key: d for d in docs}
    return {
        "items": len(docs),
        "stories": len(truth_groups),
        "against_story_labels": prf(predicted, truth),
        "same_story_pairs_with_identical_headline": len(same_headline),
        "recall_on_identical_headline_pairs": round(
            len(same_headline & predicted) / max(1, len(same_headline)), 4
        ),
        "false_pairs_with_identical_headline": sum(1 for a, b in false if titles[a] == titles[b]),
        "false_pair_examples": [
            [by_key[a].title[:70], by_key[b].title[:70], label[a][:8], label[b][:8]]
            for a, b in sorted(false)[: args.show]
        ],
        "reasons": dict(result.reasons),
        "match_add": timing(result.match_ms),
    }


# --- speed and memory at scale --------------------------------------------------------------------


_SENTENCES = re.compile(r"[^。！？!?\n]+[。！？!?]?|[^.\n]+(?:\.\s|$)")


def filler_docs(corpus: Path, count: int, seed: int, start: datetime) -> list[Doc]:
    """``count`` distinct documents recombined from real sentences of the corpus."""
    rng = random.Random(seed)
    pools: dict[str, list[str]] = {"zh": [], "en": []}
    for original in dedup_data.load_originals(corpus):
        for line in original.text.split("\n"):
            pools[original.lang].extend(
                s.strip() for s in _SENTENCES.findall(line) if len(s.strip()) > 8
            )
    for pool in pools.values():
        rng.shuffle(pool)
    docs: list[Doc] = []
    seen: set[int] = set()
    span = 60 * 3600.0
    while len(docs) < count:
        lang = "zh" if rng.random() < 0.75 else "en"
        pool = pools[lang]
        sentences = [rng.choice(pool) for _ in range(rng.choice((1, 2, 3, 4, 6, 8, 12, 16)))]
        text = ("" if lang == "zh" else " ").join(sentences)
        digest = hash(text)
        if digest in seen:
            continue
        seen.add(digest)
        title = (
            sentences[0][: rng.randint(12, 30)]
            if lang == "zh"
            else " ".join(sentences[0].split()[:10])
        )
        published = start + timedelta(seconds=rng.uniform(0, span))
        n = len(docs)
        docs.append(
            Doc(
                f"f{n}",
                f"filler-{n % 500}",
                title,
                text,
                f"https://f{n % 97}.example/{n}.html",
                published,
            )
        )
    return docs


def rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_scale(corpus: Path, settings: DedupeSettings, args: argparse.Namespace) -> dict[str, Any]:
    window = args.window_items
    start = dedup_data.START - timedelta(hours=24)
    t0 = time.perf_counter()
    docs = filler_docs(corpus, window, args.seed, start)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    stored = [(d.key, d.key, fingerprint(d, settings).to_bytes(), d.published) for d in docs]
    fp_s = time.perf_counter() - t0
    del docs
    stored_bytes = sum(len(s[2]) for s in stored)

    def rebuild() -> StoryIndex:
        index = StoryIndex(settings)
        index.add_many((k, s, Fingerprint.from_bytes(b), p) for k, s, b, p in stored)
        return index

    gc.collect()
    tracemalloc.start()
    traced = rebuild()
    traced_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    stats = traced.stats()
    del traced
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    index = rebuild()
    rebuild_s = time.perf_counter() - t0
    gc.collect()
    rss_delta = rss_bytes() - rss0
    # New items: the labelled benchmark's items in time order, against the full window.
    items = dedup_data.build(corpus, seed=args.seed, limit=args.queries)
    result = cluster([to_doc(i) for i in items], settings, index)
    total = [a + b for a, b in zip(result.fingerprint_ms, result.match_ms, strict=True)]
    return {
        "window_items": window,
        "filler_generation_seconds": round(gen_s, 1),
        "fingerprints_per_second": round(window / fp_s),
        "stored_fingerprint_bytes_mean": round(stored_bytes / window),
        "rebuild_seconds": round(rebuild_s, 2),
        "index_memory_traced_mib": round(traced_bytes / 2**20, 1),
        "index_memory_rss_delta_mib": round(rss_delta / 2**20, 1),
        "index_stats": stats,
        "queries": len(items),
        "fingerprint": timing(result.fingerprint_ms),
        "match_add": timing(result.match_ms),
        "fingerprint_match_add": timing(total),
        "fingerprint_match_add_cpu": timing(result.cpu_ms),
        "load_average": os.getloadavg()[0],
        "reasons": dict(result.reasons),
    }


# --- output ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default=os.environ.get("FEEDHUB_CORPUS"))
    parser.add_argument("--seed", type=int, default=20260302)
    parser.add_argument("--quick", action="store_true", help="10,000-item window, 1,000 originals")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=("labelled", "corpus", "scale"), action="append")
    parser.add_argument("--window-items", type=int, default=None)
    parser.add_argument("--queries", type=int, default=None, help="originals used as new items")
    parser.add_argument("--show", type=int, default=5, help="examples of errors to print")
    args = parser.parse_args(argv)
    if not args.corpus or not Path(args.corpus).is_dir():
        parser.error("set FEEDHUB_CORPUS or pass --corpus")
    corpus = Path(args.corpus)
    args.window_items = args.window_items or (10_000 if args.quick else 100_000)
    args.queries = args.queries or (300 if args.quick else 1500)
    settings = DedupeSettings()
    sections: dict[str, Callable[[Path, DedupeSettings, argparse.Namespace], dict[str, Any]]] = {
        "labelled": run_labelled,
        "corpus": run_multi_outlet,
        "scale": run_scale,
    }
    report: dict[str, Any] = {"settings": {k: getattr(settings, k) for k in settings.__slots__}}
    for name in args.only or list(sections):
        t0 = time.perf_counter()
        report[name] = sections[name](corpus, settings, args)
        report[name]["seconds"] = round(time.perf_counter() - t0, 1)
        if not args.json:
            print_section(name, report[name])
    failures = check_targets(report)
    report["targets_missed"] = failures
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print("\nTARGETS:", "all met" if not failures else "MISSED: " + "; ".join(failures))
    return 1 if failures else 0


def check_targets(report: dict[str, Any]) -> list[str]:
    failures = []
    if "labelled" in report:
        overall = report["labelled"]["overall"]
        if overall["precision"] < TARGETS["precision"]:
            failures.append(f"precision {overall['precision']} < {TARGETS['precision']}")
        if overall["recall"] < TARGETS["recall"]:
            failures.append(f"recall {overall['recall']} < {TARGETS['recall']}")
    if "scale" in report:
        mean = report["scale"]["fingerprint_match_add_cpu"]["mean_ms"]
        if mean > TARGETS["ms_per_item"]:
            failures.append(f"{mean} ms per new item > {TARGETS['ms_per_item']}")
    return failures


def print_section(name: str, data: dict[str, Any]) -> None:
    print(f"\n=== {name} ===")
    for key, value in data.items():
        if key in ("examples", "groups") or (
            isinstance(value, list) and value and isinstance(value[0], list)
        ):
            continue
        if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
            print(f"{key}:")
            for sub, subvalue in value.items():
                if isinstance(subvalue, dict) and "groups" in subvalue:
                    print(
                        f"  {sub}: "
                        + json.dumps(
                            {k: v for k, v in subvalue.items() if k != "groups"}, ensure_ascii=False
                        )
                    )
                    for g in subvalue["groups"][:15]:
                        print("      | " + "\n      | ".join(g) + "\n      +")
                else:
                    print(f"  {sub}: {json.dumps(subvalue, ensure_ascii=False)}")
        else:
            print(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    for kind, examples in data.get("examples", {}).items():
        for example in examples:
            print(f"{kind}: {json.dumps(example, ensure_ascii=False)}")


if __name__ == "__main__":
    sys.exit(main())
