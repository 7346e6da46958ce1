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
import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support_feedserver

from tests.support_feedserver import FeedServer, Route  # noqa: E402

from categorize import KEYWORDS, RULES, CachedEncoder, macro_f1  # noqa: E402
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
from title_feeds import feed_path, rss_document  # noqa: E402

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


def split(
    rows: Sequence[Row], rng: random.Random
) -> tuple[list[str], list[tuple[Row, str]], list[Row]]:
    """Labels; channel items with their source id; the mixed feed, in feed order."""
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
    return labels, channel, mixed


def setup(rows: Sequence[Row], seed: int, encoder: CachedEncoder | None) -> Setup:
    """Channel items keep their channel's section; mixed-feed items get the categorizer's
    (model + self-training + rules; with ``encoder``, model + sentence encoder + rules, the
    two best configurations of bench/CATEGORIZE.md)."""
    rng = random.Random(seed)
    labels, channel, mixed = split(rows, rng)
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


# --- precision through the pipeline ---------------------------------------------------------
#
# The same split, written as RSS feeds on a loopback server and read in by the real pipeline:
# poll (cluster, file at cold start, relate), train, re-file, relate again. Labels stay here,
# keyed by guid; feedhub sees titles, sources and their sections only.

MAX_ROUNDS = 10  # filing/relating rounds after training; more means they do not settle
MAX_ITEMS = 10_000  # upper bound when reading the items back


@dataclass
class Feeds:
    labels: list[str]
    docs: dict[str, list[tuple[Row, datetime]]]  # source id -> its items, newest first
    sections: dict[str, str | None]  # source id -> its `section:` (None: a mixed feed)


def feeds(rows: Sequence[Row], seed: int, now: datetime) -> Feeds:
    """The split of :func:`setup` (same seed, same items, same sources), dated over the last
    ``SPAN_DAYS`` days before ``now``, in whole seconds as RSS writes them."""
    rng = random.Random(seed)
    labels, channel, mixed = split(rows, rng)
    placed = [(row, source) for row, source in channel]
    placed += [(row, f"mixed-{i % MIXED_SOURCES}") for i, row in enumerate(mixed)]
    docs: dict[str, list[tuple[Row, datetime]]] = {}
    for row, source in placed:
        when = now - timedelta(seconds=round(rng.uniform(0.0, SPAN_DAYS) * 86400))
        docs.setdefault(source, []).append((row, when))
    for entries in docs.values():
        entries.sort(key=lambda e: e[1], reverse=True)
    sections: dict[str, str | None] = {
        source: (source.split("-")[1] if source.startswith("channel-") else None) for source in docs
    }
    return Feeds(labels, docs, sections)


def pipeline_settings(
    fd: Feeds, server: FeedServer, db: Path, encoder: str, rules: bool, margin: float | None
) -> Any:
    """Shipped categorize defaults (the model's, not config/feedhub.yaml's ``fallback: zonghe``,
    a section that does not exist here) but for ``encoder``; the 10 classes as flat sections,
    with the keyword rules of bench/categorize.py when ``rules``."""
    from feedhub.settings import Settings

    sections: list[dict[str, Any]] = [{"id": label, "title": label} for label in fd.labels]
    if rules:
        for section in sections:
            section["rules"] = {"keywords": KEYWORDS[section["id"]].split()}
    sources = [
        {
            "id": source,
            "name": source,
            "url": server.url(feed_path(source)),
            **({"section": section} if section else {}),
        }
        for source, section in sorted(fd.sections.items())
    ]
    return Settings.model_validate(
        {
            "storage": {"url": f"sqlite:///{db}"},
            "fetch": {"allowlist": ["127.0.0.1"]},
            "categorize": {
                "encoder": encoder,
                **({"override_margin": margin} if margin is not None else {}),
            },
            "sections": sections,
            "sources": sources,
        }
    )


def score_lists(
    lists: dict[str, list[str]], story_label: dict[str, str], scored: Sequence[str], limit: int
) -> tuple[float, float]:
    """Precision@limit (missing places count as misses) and mean list length."""
    hits = sum(
        story_label.get(r) == story_label[sid] for sid in scored for r in lists.get(sid, [])[:limit]
    )
    length = sum(len(lists.get(sid, [])) for sid in scored)
    return hits / (limit * len(scored)), length / len(scored)


def recompute(
    docs: Sequence[RelatedDoc], params: RelatedParams, now: datetime
) -> dict[str, list[str]]:
    index = RelatedIndex(params)
    index.add_many(docs)
    return {d.story_id: [r.story_id for r in index.related(d.story_id, now)] for d in docs}


def run_pipeline_seed(
    rows: Sequence[Row], seed: int, encoder: str, rules: bool, margin: float | None
) -> dict[str, Any]:
    from feedhub import sections as fsections
    from feedhub.pipeline import poll_sources
    from feedhub.relate import Relater, related_doc, related_params
    from feedhub.storage import open_storage

    now = datetime.now(UTC).replace(microsecond=0)
    fd = feeds(rows, seed, now)
    truth = {r.id: r.label for r in rows}  # by guid; read only when scoring
    out: dict[str, Any] = {"seed": seed}
    with tempfile.TemporaryDirectory(prefix="feedhub-related-") as tmp, FeedServer() as server:
        for source, entries in fd.docs.items():
            rss = rss_document(source, ((row.id, row.title, when) for row, when in entries))
            server.routes[feed_path(source)] = Route(rss)
        settings = pipeline_settings(fd, server, Path(tmp) / "feedhub.db", encoder, rules, margin)
        storage = open_storage(settings.storage.url)
        try:
            storage.migrate()
            t0 = time.perf_counter()
            report = asyncio.run(poll_sources(settings, storage, ignore_schedule=True))
            out["poll_seconds"] = round(time.perf_counter() - t0, 1)
            out["poll"] = {
                "ok": report.ok,
                "errors": report.errors,
                "new_items": report.new_items,
                "clustered": report.clustered,
                "filed": report.filed,
                "related": report.related,
            }
            if report.errors or report.new_items != sum(map(len, fd.docs.values())):
                raise SystemExit(f"pipeline: the poll did not read every feed: {out['poll']}")
            t0 = time.perf_counter()
            record = fsections.train(storage, settings, datetime.now(UTC))
            out["train_seconds"] = round(time.perf_counter() - t0, 1)
            out["model"] = json.loads(record.info) if record else None
            filer = fsections.Filer(storage, settings)
            relater = Relater(storage, settings)
            t0 = time.perf_counter()
            rounds: list[tuple[int, int]] = []
            for _ in range(MAX_ROUNDS):
                filed = filer.run(datetime.now(UTC))
                related = relater.run(datetime.now(UTC))
                rounds.append((filed, related))
                if filed == 0 and related == 0:
                    break
            out["refile_seconds"] = round(time.perf_counter() - t0, 1)
            out["rounds"] = rounds
            out["settled"] = rounds[-1] == (0, 0)
            out["load_seconds"] = round(
                out["poll_seconds"] + out["train_seconds"] + out["refile_seconds"], 1
            )
            stored = storage.list_items(limit=MAX_ITEMS)
            out["items"] = len(stored)
            item_label = {s.item.key: truth[s.item.entry_id] for s in stored}
            story_label = {s.story_id: item_label[s.story_id] for s in stored if s.story_id}
            members = Counter(s.story_id for s in stored if s.story_id)
            out["stories"] = len(story_label)
            out["stories_merged"] = sum(n > 1 for n in members.values())
            out["items_in_other_label_story"] = sum(
                s.story_id is not None and story_label[s.story_id] != truth[s.item.entry_id]
                for s in stored
            )
            mixed_items = [s for s in stored if fd.sections[s.item.source_id] is None]
            channel_items = [s for s in stored if fd.sections[s.item.source_id] is not None]
            out["filing_accuracy_mixed"] = sum(
                s.section_id == truth[s.item.entry_id] for s in mixed_items
            ) / len(mixed_items)
            out["filing_macro_f1_mixed"] = macro_f1(
                [truth[s.item.entry_id] for s in mixed_items],
                [s.section_id or "" for s in mixed_items],
                fd.labels,
            )
            out["channel_items_in_own_section"] = sum(
                s.section_id == fd.sections[s.item.source_id] for s in channel_items
            ) / len(channel_items)
            moves = Counter(
                f"{fd.sections[s.item.source_id]}->{s.section_id}"
                for s in channel_items
                if s.section_id != fd.sections[s.item.source_id]
            )
            out["channel_items_moved"] = dict(moves.most_common(6))
            mixed_stories = sorted(
                {s.story_id for s in mixed_items if s.story_id == s.item.key}
            )  # stories a mixed-feed item founded
            out["scored_stories"] = len(mixed_stories)
            all_stories = sorted(story_label)
            refs = storage.related_lists(all_stories)
            lists = {sid: [r.story_id for r in rs] for sid, rs in refs.items()}
            limit = settings.related.limit
            p, n = score_lists(lists, story_label, mixed_stories, limit)
            out["precision_at_5_mixed"], out["mean_length_mixed"] = p, n
            out["precision_at_5_all"] = score_lists(lists, story_label, all_stories, limit)[0]
            # the same stored stories, every list computed afresh: as stored (what incremental
            # updates cost), with channel stories in their channel's section (what moving
            # channel items out costs), with true sections (the text's and plumbing's bound)
            docs = [
                related_doc(d) for d in storage.related_window(now - timedelta(days=SPAN_DAYS + 2))
            ]
            channel_docs = [
                dataclasses.replace(d, section=sec, section_confidence=1.0)
                if (sec := fd.sections[d.source_ids[0]]) is not None
                else d
                for d in docs
            ]
            true_docs = [
                dataclasses.replace(d, section=story_label[d.story_id], section_confidence=1.0)
                for d in docs
            ]
            params = related_params(settings)
            clock = min(now, max(d.published for d in docs))
            for key, variant in (
                ("recomputed", docs),
                ("recomputed_channels_kept", channel_docs),
                ("recomputed_true_sections", true_docs),
            ):
                fresh = recompute(variant, params, clock)
                out[f"precision_at_5_mixed_{key}"] = score_lists(
                    fresh, story_label, mixed_stories, limit
                )[0]
        finally:
            storage.close()
    print(
        f"pipeline: seed {seed} encoder {encoder} rules {rules} done "
        f"(p@5 {out['precision_at_5_mixed']:.3f}, load {out['load_seconds']} s)",
        file=sys.stderr,
        flush=True,
    )
    return out


def run_pipeline(args: argparse.Namespace, rows: Sequence[Row]) -> dict[str, Any]:
    encoder = "use" if args.semantic else "none"
    out: dict[str, Any] = {
        "seeds": args.seeds,
        "encoder": encoder,
        "override_margin": args.override_margin,
        "variants": {},
    }
    choices = {"both": (True, False), "yes": (True,), "no": (False,)}
    for rules in choices[args.pipeline_rules]:
        name = "keyword rules" if rules else "no rules"
        out["variants"][name] = [
            run_pipeline_seed(rows, s, encoder, rules, args.override_margin) for s in args.seeds
        ]
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


PIPELINE_ROWS = (
    ("precision@5, mixed-feed stories (stored lists)", "precision_at_5_mixed"),
    ("precision@5, every story (stored lists)", "precision_at_5_all"),
    ("precision@5, mixed, lists recomputed afresh", "precision_at_5_mixed_recomputed"),
    (
        "  recomputed, channel stories in their channel's section",
        "precision_at_5_mixed_recomputed_channels_kept",
    ),
    ("  recomputed, true sections (upper bound)", "precision_at_5_mixed_recomputed_true_sections"),
    ("mean list length, mixed", "mean_length_mixed"),
    ("filing accuracy, mixed-feed items", "filing_accuracy_mixed"),
    ("filing macro-F1, mixed-feed items", "filing_macro_f1_mixed"),
    ("channel items left in their section", "channel_items_in_own_section"),
    ("stories / of them merged (>1 item)", ("stories", "stories_merged")),
    ("items in a story of another label", "items_in_other_label_story"),
    ("poll s (fetch, parse, store, cluster, file, relate)", "poll_seconds"),
    ("train s", "train_seconds"),
    ("re-file + relate s", "refile_seconds"),
    ("time to load s (sum)", "load_seconds"),
)


def print_pipeline(pl: dict[str, Any]) -> None:
    print(
        f"pipeline (real poll over 127.0.0.1, SQLite), encoder {pl['encoder']}, "
        f"override_margin {pl['override_margin'] or 'default'}, seeds {pl['seeds']}"
    )
    for name, runs in pl["variants"].items():
        print(f"  -- sections with {name} --")
        for label, key in PIPELINE_ROWS:
            if isinstance(key, tuple):
                shown = " / ".join(f"{statistics.fmean(r[k] for r in runs):.0f}" for k in key)
            else:
                values = [float(r[key]) for r in runs]
                shown = (
                    spread(values)
                    if "precision" in key or "accuracy" in key or "f1" in key
                    else (f"{statistics.fmean(values):.2f} [{min(values):g}-{max(values):g}]")
                )
            print(f"  {label:55} {shown}")
        for r in runs:
            print(
                f"  seed {r['seed']}: poll {r['poll']}, rounds {r['rounds']}, "
                f"settled {r['settled']}, model left out {(r['model'] or {}).get('left_out')}, "
                f"channel items moved {r['channel_items_moved']}"
            )
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=os.environ.get("FEEDHUB_CORPUS"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--boosts", type=float, nargs="*", default=[0.5, 2.0, 4.0])
    ap.add_argument(
        "--only",
        choices=["precision", "pipeline", "core", "speed"],
        help="precision: pipeline and core; pipeline or core: that precision part alone",
    )
    ap.add_argument(
        "--pipeline-rules",
        choices=["both", "yes", "no"],
        default="both",
        help="pipeline runs with the keyword rules, without, or both",
    )
    ap.add_argument(
        "--override-margin",
        type=float,
        help="pipeline: categorize.override_margin instead of the default",
    )
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
    if args.only in (None, "precision", "pipeline"):
        result["pipeline"] = run_pipeline(args, rows)
    if args.only in (None, "precision", "core"):
        result["precision"] = run_precision(args, rows)
    if args.only in (None, "speed"):
        result["speed"] = [run_speed(args, rows, n) for n in args.sizes]
    if args.json:
        json.dump(result, sys.stdout, indent=1, ensure_ascii=False)
        print()
        return
    print(f"params: {result['params']}\n")
    if "pipeline" in result:
        print_pipeline(result["pipeline"])
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
