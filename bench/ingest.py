"""Items per second through parse+normalize+store, beside feedparser alone on the same bytes.

    FEEDHUB_CORPUS=../shared/corpus .venv/bin/python bench/ingest.py [--rounds 3] [--json]

Every feed document under $FEEDHUB_CORPUS/feeds-* is read into memory once. Each round then
(a) runs ``feedparser.parse`` on every document with its default settings (what "feedparser
alone" means for a reader of feeds), and (b) runs feedhub's ``parse_feed`` followed by
``Storage.record_poll`` into a fresh SQLite file, with new source ids each round so every item
is a real insert. The two are interleaved per round in the same process so that machine noise
hits both alike. Target: the pipeline at least half as fast as feedparser alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from feedhub.core.parse import parse_feed
from feedhub.core.schedule import after_fetched
from feedhub.errors import ParseError
from feedhub.models import FetchLogEntry, SourceSpec, SourceState
from feedhub.settings import ScheduleSettings
from feedhub.storage import open_storage

HEADERS = {"content-type": "application/xml"}
MAX_SECONDS = 600


def load_documents(corpus: Path) -> list[tuple[str, bytes]]:
    docs = []
    for path in sorted(corpus.glob("feeds-*/**/*")):
        if path.is_file() and path.suffix.lower() in {".xml", ".rss", ".atom", ".rdf", ".json"}:
            docs.append((str(path.relative_to(corpus)), path.read_bytes()))
    return docs


def run_feedparser(docs: list[tuple[str, bytes]]) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for _, content in docs:
        n += len(feedparser.parse(content, response_headers=HEADERS).entries)
    return time.perf_counter() - t0, n


def run_pipeline(docs: list[tuple[str, bytes]], db_url: str, round_no: int) -> tuple[float, int]:
    storage = open_storage(db_url)
    storage.migrate()
    now = datetime.now(UTC)
    ids = [f"r{round_no}-{i}" for i in range(len(docs))]
    storage.sync_sources([SourceSpec(sid, f"https://example.cn/{sid}") for sid in ids], now)
    schedule = ScheduleSettings()
    rng = random.Random(0)
    t0 = time.perf_counter()
    stored = 0
    for sid, (name, content) in zip(ids, docs, strict=True):
        try:
            feed = parse_feed(
                content,
                HEADERS,
                url=f"https://example.cn/{name}",
                source_id=sid,
                now=now,
                default_timezone="Asia/Shanghai",
            )
        except ParseError:
            continue
        state = after_fetched(
            SourceState(sid, f"https://example.cn/{sid}"),
            now,
            schedule,
            interval=None,
            feed=feed,
            etag=None,
            last_modified=None,
            headers=HEADERS,
            permanent_redirect=None,
            rng=rng,
        )
        log = FetchLogEntry(sid, now, 0.0, 200, len(content), 0, 0, None)
        outcome = storage.record_poll(state, feed.items, log, now)
        stored += outcome.new + outcome.updated + outcome.unchanged
    elapsed = time.perf_counter() - t0
    storage.close()
    return elapsed, stored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    corpus_dir = os.environ.get("FEEDHUB_CORPUS")
    if not corpus_dir:
        print("set FEEDHUB_CORPUS to the shared corpus folder", file=sys.stderr)
        return 2
    docs = load_documents(Path(corpus_dir))
    total_bytes = sum(len(c) for _, c in docs)
    if not args.json:
        print(f"{len(docs)} documents, {total_bytes / 1e6:.1f} MB, {args.rounds} rounds")
    fp_rates, hub_rates = [], []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/ingest.db"
        for r in range(args.rounds):
            fp_s, fp_items = run_feedparser(docs)
            hub_s, hub_items = run_pipeline(docs, db_url, r)
            fp_rates.append(fp_items / fp_s)
            hub_rates.append(hub_items / hub_s)
            if not args.json:
                print(
                    f"round {r + 1}: feedparser {fp_items} items in {fp_s:.2f}s "
                    f"({fp_items / fp_s:,.0f}/s); feedhub parse+normalize+store {hub_items} "
                    f"items in {hub_s:.2f}s ({hub_items / hub_s:,.0f}/s)"
                )
            if time.monotonic() - started > MAX_SECONDS:
                break
    fp, hub = statistics.median(fp_rates), statistics.median(hub_rates)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "documents": len(docs),
        "feedparser_items_per_s": round(fp),
        "feedhub_items_per_s": round(hub),
        "ratio": round(hub / fp, 3),
        "target_ratio": 0.5,
        "peak_rss_mib": round(peak_mib, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        verdict = "meets" if hub / fp >= 0.5 else "MISSES"
        print(
            f"median: feedparser alone {fp:,.0f} items/s, feedhub pipeline {hub:,.0f} items/s, "
            f"ratio {hub / fp:.2f} ({verdict} the 0.5 target); peak RSS {peak_mib:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
