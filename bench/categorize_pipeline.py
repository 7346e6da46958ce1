"""The sections benchmark through the real pipeline: ``bench/categorize.py --pipeline``.

The split of ``categorize.split_rows`` (same seed, same items) becomes RSS documents on a
loopback HTTP server: one channel feed per class (a source whose ``section:`` is the class) and
``MIXED_SOURCES`` mixed feeds without a section. feedhub polls them into a fresh SQLite
database (``poll_sources``: parse, store, cluster, file at cold start by rules and channels),
trains (``sections.train``: the channel items, misfiled ones left out) and files again
(``sections.Filer``, batches of 500) until nothing is left to file, exactly as the worker does.
Labels stay here, keyed by guid: feedhub sees titles, feeds and the channels' sections only.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support_feedserver import FeedServer, Route

from title_feeds import feed_path, rss_document

MIXED_SOURCES = 5
SPAN_DAYS = 10.0  # published times spread over this many days, inside the refile window
MAX_ROUNDS = 10  # filing rounds after training; more means filing does not settle
MAX_ITEMS = 10_000


@dataclass
class PipelineRun:
    truth: list[str]  # mixed-feed items, by guid order
    pred: list[str]
    filed: int  # items filed by the first filing after training
    filing_seconds: float  # that filing, fastest of the passes: storage reads and writes included
    load_seconds: float  # loading the encoder's weights and tokenizer (fastest)
    train_seconds: float
    poll_seconds: float
    left_out: int  # channel items left out of training as misfiled
    channel_kept: float  # share of channel items filed in their channel's section


def _copy(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included), by SQLite's backup."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def _settings(
    labels: list[str], sources: dict[str, str | None], server: FeedServer, db: Path, **kw: Any
) -> Any:
    """The shipped categorize defaults but the encoder; the classes as flat sections with the
    bench's keyword rules; related reading off (it has its own benchmark)."""
    from categorize import KEYWORDS
    from feedhub.settings import Settings

    return Settings.model_validate(
        {
            "storage": {"url": f"sqlite:///{db}"},
            "fetch": {"allowlist": ["127.0.0.1"]},
            "related": {"limit": 0},
            "categorize": {"encoder": kw["encoder"]},
            "sections": [
                {"id": label, "title": label, "rules": {"keywords": KEYWORDS[label].split()}}
                for label in labels
            ],
            "sources": [
                {
                    "id": sid,
                    "name": sid,
                    "url": server.url(feed_path(sid)),
                    **({"section": section} if section else {}),
                }
                for sid, section in sorted(sources.items())
            ],
        }
    )


def run(
    train: list[tuple[dict[str, str], str]],
    test: list[dict[str, str]],
    labels: list[str],
    encoder: str,
    seed: int,
    passes: int = 3,
) -> PipelineRun:
    """Poll, train and file one split; ``encoder`` is ``categorize.encoder`` (use or none);
    training and the first filing after it are timed ``passes`` times."""
    from feedhub import sections
    from feedhub.pipeline import poll_sources
    from feedhub.storage import open_storage

    now = datetime.now(UTC).replace(microsecond=0)
    docs: dict[str, list[tuple[dict[str, str], datetime]]] = {}
    section_of: dict[str, str | None] = {}
    truth = {row["id"]: label for row, label in train} | {row["id"]: row["label"] for row in test}
    placed = [(row, f"channel-{label}", label) for row, label in train]
    placed += [(row, f"mixed-{i % MIXED_SOURCES}", None) for i, row in enumerate(test)]
    for n, (row, source, section) in enumerate(placed):
        # spread over SPAN_DAYS, in whole seconds as RSS writes them; fixed by the seed
        offset = ((n * 7919 + seed * 104729) % 1_000_003) / 1_000_003 * SPAN_DAYS * 86400
        docs.setdefault(source, []).append((row, now - timedelta(seconds=round(offset))))
        section_of[source] = section
    for entries in docs.values():
        entries.sort(key=lambda e: e[1], reverse=True)
    with tempfile.TemporaryDirectory(prefix="feedhub-categorize-") as tmp, FeedServer() as server:
        for source, entries in docs.items():
            rss = rss_document(source, ((row["id"], row["title"], when) for row, when in entries))
            server.routes[feed_path(source)] = Route(rss)
        settings = _settings(labels, section_of, server, Path(tmp) / "db.sqlite", encoder=encoder)
        storage = open_storage(settings.storage.url)
        try:
            storage.migrate()
            t0 = time.perf_counter()
            report = asyncio.run(poll_sources(settings, storage, ignore_schedule=True))
            poll_seconds = time.perf_counter() - t0
            if report.errors or report.new_items != len(placed):
                raise SystemExit(
                    f"pipeline: the poll did not read every feed: {report.errors} errors, "
                    f"{report.new_items} of {len(placed)} items"
                )
        finally:
            storage.close()
        # Each pass trains and files on a copy of the polled database, in one process with one
        # encoder for both (weights loaded once, timed apart), as the worker does after polls;
        # the fastest pass counts for the times, the first one for the filing.
        polled = Path(tmp) / "polled.sqlite"
        _copy(Path(tmp) / "db.sqlite", polled)
        train_seconds = filing_seconds = load_seconds = float("inf")
        for n in range(passes):
            db = Path(tmp) / f"pass{n}.sqlite"
            _copy(polled, db)
            storage = open_storage(f"sqlite:///{db}")
            try:
                filer = sections.Filer(storage, settings)
                t0 = time.perf_counter()
                encoder = filer.text_encoder()
                load = getattr(encoder, "load", None)
                if load is not None:
                    load()
                load_seconds = min(load_seconds, time.perf_counter() - t0)
                t0 = time.perf_counter()
                record = sections.train(storage, settings, datetime.now(UTC), encoder=encoder)
                train_seconds = min(train_seconds, time.perf_counter() - t0)
                if record is None:
                    raise SystemExit("pipeline: training found nothing new to learn")
                t0 = time.perf_counter()
                filed = filer.run(datetime.now(UTC))
                filing_seconds = min(filing_seconds, time.perf_counter() - t0)
                if n == 0:
                    left_out = int(json.loads(record.info)["left_out"])
                    for _ in range(MAX_ROUNDS):
                        if filer.run(datetime.now(UTC)) == 0:
                            break
                    else:
                        raise SystemExit("pipeline: filing did not settle")
                    stored = storage.list_items(limit=MAX_ITEMS)
            finally:
                storage.close()
    mixed = sorted(
        (s for s in stored if section_of[s.item.source_id] is None), key=lambda s: s.item.entry_id
    )
    channel = [s for s in stored if section_of[s.item.source_id] is not None]
    kept = sum(s.section_id == section_of[s.item.source_id] for s in channel) / len(channel)
    return PipelineRun(
        truth=[truth[s.item.entry_id] for s in mixed],
        pred=[s.section_id or "" for s in mixed],
        filed=filed,
        filing_seconds=filing_seconds,
        load_seconds=load_seconds,
        train_seconds=train_seconds,
        poll_seconds=poll_seconds,
        left_out=left_out,
        channel_kept=kept,
    )
