"""Every feed document of the shared corpus through parse_feed.

Each must end in items, in a valid but empty feed, or in a ParseError with a clear message;
nothing else may escape. The legacy GB2312 and Big5 feeds must come out without mojibake.
The corpus is found through FEEDHUB_CORPUS; without it these tests skip.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedhub.core.parse import parse_feed
from feedhub.errors import ParseError
from feedhub.models import ParsedFeed

pytestmark = pytest.mark.corpus

NOW = datetime(2026, 12, 1, tzinfo=UTC)
NOT_DOCUMENTS = {"PROVENANCE.md", "README.md", "commits.txt"}
LEGACY = ("feeds-cjk-legacy-encodings-chardet/GB2312", "feeds-cjk-legacy-encodings-chardet/Big5")
MOJIBAKE = re.compile("[\ufffd\u00c2\u00c3\u00e2\u00e7][\u0080-\u00ff]|\ufffd|ç»|â€")
CJK = re.compile("[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
CJK_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]{2,}")


@dataclass(frozen=True)
class Outcome:
    path: Path
    feed: ParsedFeed | None = None
    error: ParseError | None = None


def documents(corpus: Path) -> list[Path]:
    roots = [*sorted(corpus.glob("feeds-*")), corpus / "feedparser-tests"]
    return [
        path
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name not in NOT_DOCUMENTS
    ]


@pytest.fixture(scope="module")
def outcomes(corpus: Path) -> dict[str, Outcome]:
    """One pass over the corpus, shared by the checks below. Anything but a ParseError
    propagates and fails the module: that is the no-crash check."""
    results: dict[str, Outcome] = {}
    started = time.perf_counter()
    for path in documents(corpus):
        name = path.relative_to(corpus).as_posix()
        try:
            feed = parse_feed(
                path.read_bytes(),
                {},
                url=f"https://corpus.example/{name}",
                source_id="corpus",
                now=NOW,
                default_timezone="Asia/Shanghai",
            )
        except ParseError as exc:
            results[name] = Outcome(path, error=exc)
        else:
            results[name] = Outcome(path, feed=feed)
    with_items = [o for o in results.values() if o.feed and o.feed.items]
    errors = [o for o in results.values() if o.error]
    print(
        f"\ncorpus: {len(results)} documents, {len(with_items)} with items, "
        f"{len(results) - len(with_items) - len(errors)} valid but empty, "
        f"{len(errors)} ParseErrors, "
        f"{sum(len(o.feed.items) for o in with_items if o.feed)} items, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return results


def test_every_document_ends_in_items_an_empty_feed_or_a_clear_error(
    outcomes: dict[str, Outcome],
) -> None:
    assert len(outcomes) > 2000
    unclear = []
    for name, outcome in outcomes.items():
        if outcome.error is not None:
            message = outcome.error.message
            if (
                len(message) < 10
                or "Traceback" in message
                or outcome.error.url not in str(outcome.error)
            ):
                unclear.append(f"{name}: {message!r}")
        elif outcome.feed is not None and not outcome.feed.items:
            if outcome.feed.version == "unknown":
                unclear.append(f"{name}: no items and no recognised format")
    assert not unclear, "\n".join(unclear)


def test_real_feeds_mostly_yield_items(outcomes: dict[str, Outcome]) -> None:
    real = {k: o for k, o in outcomes.items() if k.startswith("feeds-")}
    with_items = [k for k, o in real.items() if o.feed and o.feed.items]
    assert len(real) > 150
    assert len(with_items) >= 0.85 * len(real)


def test_html_served_at_feed_urls_is_a_parse_error(outcomes: dict[str, Outcome]) -> None:
    html = [k for k in outcomes if "/feed_type/html/" in k]
    assert html
    for name in html:
        error = outcomes[name].error
        assert error is not None and "HTML" in error.message, name


@pytest.mark.parametrize(
    ("folder", "codec"),
    [(LEGACY[0], "gb18030"), (LEGACY[1], "big5hkscs"), ("feeds-zh-qq-news-gb2312", "gb18030")],
)
def test_legacy_chinese_titles_have_no_mojibake(
    outcomes: dict[str, Outcome], folder: str, codec: str
) -> None:
    """Titles carry no mojibake, are mostly Chinese, and every run of Chinese characters in
    them appears in the document as its folder's codec (which the corpus vouches for) reads it."""
    feeds = {k: o for k, o in outcomes.items() if k.startswith(folder + "/") and o.feed}
    assert len(feeds) >= 2
    problems = []
    non_ascii = cjk = 0
    for name, outcome in feeds.items():
        assert outcome.feed is not None
        titles = [item.title for item in outcome.feed.items] + [outcome.feed.title or ""]
        reference = " ".join(
            html.unescape(outcome.path.read_bytes().decode(codec, "replace")).split()
        )
        for title in titles:
            non_ascii += sum(1 for char in title if ord(char) > 0x7F)
            cjk += len(CJK.findall(title))
            if MOJIBAKE.search(title):
                problems.append(f"{name}: {title!r}")
            missing = [run for run in CJK_RUN.findall(title) if run not in reference]
            if missing:
                problems.append(f"{name}: {missing[:3]} not in the document ({title!r})")
    assert not problems, "\n".join(problems)
    assert cjk >= 0.8 * non_ascii and cjk > 0


def test_poll_series_keeps_entry_ids_stable(outcomes: dict[str, Outcome]) -> None:
    """Twelve hourly snapshots of one feed: an entry seen in several polls keeps one id."""
    series = {k: o for k, o in outcomes.items() if "sina-finance-7x24-poll-series" in k}
    assert len(series) == 12
    guids: set[str] = set()
    ids: set[str] = set()
    for outcome in series.values():
        raw = outcome.path.read_text("utf-8")
        guids.update(g.strip() for g in re.findall(r"<guid[^>]*>([^<]*)</guid>", raw))
        assert outcome.feed is not None
        ids.update(item.entry_id for item in outcome.feed.items)
    assert ids == guids
