"""CPU per item of what a parse worker does to each new item: parse, fingerprint, search terms.

The poll benchmark is CPU-bound in its parse workers, and this splits their cost by step on the
same kind of feeds (``farm.py``'s Chinese regional news, 1-3 KB of HTML per item), without the
network, the database or the machine-wide load of ``poll.py``. Each step runs over all items
``--repeat`` times and the best run counts (process CPU time, so other processes on the
machine disturb it less than wall time).

Run: ``python bench/fingerprint.py --feeds 100`` (writes the farm into a temporary directory,
or reuses ``--farm DIR`` when given).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from farm import FarmSpec, write_farm  # noqa: E402
from feedhub.core.dedupe import DedupeSettings  # noqa: E402
from feedhub.core.parse import parse_feed  # noqa: E402
from feedhub.core.searchterms import item_terms  # noqa: E402
from feedhub.models import Item, ParsedFeed  # noqa: E402
from feedhub.parse_worker import item_extras, items_extras  # noqa: E402
from feedhub.stories import item_fingerprint  # noqa: E402

NOW = datetime(2025, 11, 26, tzinfo=UTC)
MAX_FEEDS = 2000


def best_cpu(run: Callable[[], object], repeat: int) -> float:
    """The smallest process CPU time of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def measure(docs: list[bytes], repeat: int) -> dict[str, float]:
    """Milliseconds of CPU per item for each step."""
    settings = DedupeSettings()

    def parse_all() -> list[ParsedFeed]:
        return [
            parse_feed(
                doc,
                {},
                url="http://farm.example/",
                source_id="s",
                now=NOW,
                default_timezone="Asia/Shanghai",
                encoding=None,
            )  # fmt: skip
            for doc in docs
        ]

    feeds = [feed.items for feed in parse_all()]
    items: list[Item] = [item for feed in feeds for item in feed]
    if not items:
        raise SystemExit("no items parsed")
    steps: dict[str, Callable[[], object]] = {
        "parse+normalize": parse_all,
        "fingerprint": lambda: [item_fingerprint(i, i.published or NOW, settings) for i in items],
        "terms": lambda: [item_terms(i.title, i.summary, i.content) for i in items],
        "fingerprint+terms (worker)": lambda: [
            item_extras(i, NOW, settings, terms=True) for i in items
        ],
        "the same, by document": lambda: [
            items_extras(feed, NOW, settings, terms=True) for feed in feeds
        ],
    }
    return {name: best_cpu(run, repeat) / len(items) * 1e3 for name, run in steps.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=100, help=f"at most {MAX_FEEDS}")
    parser.add_argument("--items", type=int, default=FarmSpec.items)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--farm", type=Path, help="a farm directory to write or reuse")
    args = parser.parse_args(argv)
    spec = FarmSpec(feeds=max(1, min(args.feeds, MAX_FEEDS)), items=max(1, min(args.items, 100)))
    with tempfile.TemporaryDirectory(prefix="fh-fp-") as tmp:
        root = args.farm or Path(tmp)
        docs = [(root / name).read_bytes() for name in write_farm(root, spec)]
        results = measure(docs, max(1, args.repeat))
    print(f"{spec.feeds} feeds x {spec.items} items, best of {args.repeat}, CPU ms per item:")
    for name, ms in results.items():
        print(f"  {name:28s} {ms:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
