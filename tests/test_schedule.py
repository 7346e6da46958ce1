from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from feedhub.core.schedule import (
    after_error,
    after_fetched,
    cache_lifetime,
    next_error_check,
    next_success_check,
    observed_interval,
)
from feedhub.models import ParsedFeed, SourceState
from feedhub.settings import ScheduleSettings

NOW = datetime(2025, 11, 25, 8, 0, tzinfo=UTC)  # a Tuesday
PLAIN = ScheduleSettings(jitter=0)


def rng() -> random.Random:
    return random.Random(7)


def delay(when: datetime) -> float:
    return (when - NOW).total_seconds()


def test_interval_is_the_base() -> None:
    assert delay(next_success_check(NOW, PLAIN, interval=900, rng=rng())) == 900
    assert delay(next_success_check(NOW, PLAIN, interval=None, rng=rng())) == 1800


def test_ttl_cache_control_and_expires_only_lengthen() -> None:
    assert delay(next_success_check(NOW, PLAIN, interval=900, ttl_minutes=60, rng=rng())) == 3600
    assert delay(next_success_check(NOW, PLAIN, interval=900, ttl_minutes=5, rng=rng())) == 900
    assert (
        delay(next_success_check(NOW, PLAIN, interval=900, cache_seconds=7200, rng=rng())) == 7200
    )


def test_clamped_to_min_and_max() -> None:
    settings = ScheduleSettings(jitter=0, min_interval=600, max_interval=3600)
    assert delay(next_success_check(NOW, settings, interval=60, rng=rng())) == 600
    assert (
        delay(next_success_check(NOW, settings, interval=900, ttl_minutes=600, rng=rng())) == 3600
    )


def test_adapts_to_publishing_pace_within_bounds() -> None:
    fast = next_success_check(NOW, PLAIN, interval=1800, publish_interval=60, rng=rng())
    assert delay(fast) == 900  # never faster than half the interval
    slow = next_success_check(NOW, PLAIN, interval=1800, publish_interval=3 * 3600, rng=rng())
    assert delay(slow) == 3 * 3600
    dead = next_success_check(NOW, PLAIN, interval=1800, publish_interval=30 * 86400, rng=rng())
    assert delay(dead) == 8 * 1800


def test_jitter_spreads_but_stays_within_fraction() -> None:
    settings = ScheduleSettings(jitter=0.1)
    r = rng()
    delays = {delay(next_success_check(NOW, settings, interval=1800, rng=r)) for _ in range(50)}
    assert len(delays) > 40
    assert all(1620 <= d <= 1980 for d in delays)


def test_skip_hours_and_days() -> None:
    # 08:30 UTC falls in skipped hours 8-10: moved to 11:00
    when = next_success_check(
        NOW, PLAIN, interval=1800, skip_hours=frozenset({8, 9, 10}), rng=rng()
    )
    assert when == datetime(2025, 11, 25, 11, 0, tzinfo=UTC)
    # Tuesday (1) and Wednesday (2) skipped: Thursday 00:00
    when = next_success_check(NOW, PLAIN, interval=1800, skip_days=frozenset({1, 2}), rng=rng())
    assert when == datetime(2025, 11, 27, 0, 0, tzinfo=UTC)


def test_error_backoff_doubles_and_caps() -> None:
    settings = ScheduleSettings(jitter=0, error_backoff=600, max_error_backoff=3600)
    delays = [delay(next_error_check(NOW, settings, error_count=n, rng=rng())) for n in range(1, 6)]
    assert delays == [600, 1200, 2400, 3600, 3600]


def test_retry_after_is_honoured() -> None:
    settings = ScheduleSettings(jitter=0, error_backoff=600)
    later = NOW + timedelta(hours=3)
    assert next_error_check(NOW, settings, error_count=1, retry_after=later, rng=rng()) == later
    sooner = NOW + timedelta(seconds=30)
    assert (
        delay(next_error_check(NOW, settings, error_count=1, retry_after=sooner, rng=rng())) == 600
    )


def test_cache_lifetime() -> None:
    assert cache_lifetime({"cache-control": "public, max-age=600"}, NOW) == 600
    assert cache_lifetime({"cache-control": "s-maxage=60, max-age=600"}, NOW) == 60
    assert cache_lifetime({"cache-control": "no-cache, max-age=600"}, NOW) is None
    expires = "Tue, 25 Nov 2025 09:00:00 GMT"
    assert cache_lifetime({"expires": expires}, NOW) == 3600
    assert cache_lifetime({"expires": "garbage"}, NOW) is None
    assert cache_lifetime({}, NOW) is None


def test_observed_interval() -> None:
    times = [NOW - timedelta(hours=h) for h in (0, 1, 2, 3)]
    assert observed_interval(times, NOW, None) == 3600
    assert observed_interval(times, NOW, 7200) == 0.5 * 3600 + 0.5 * 7200
    assert observed_interval([NOW], NOW, 123.0) == 123.0  # one date says nothing
    stale = [NOW - timedelta(days=d) for d in (10, 10.5)]
    assert observed_interval(stale, NOW, None) == 5 * 86400  # quiet for 10 days: half that


def test_state_after_success_and_error() -> None:
    state = SourceState("s", "https://a.cn/rss", etag='"old"', error_count=3, last_error="x")
    feed = ParsedFeed(None, None, None, "rss20", "utf-8", (), ttl_minutes=120)
    ok = after_fetched(
        state,
        NOW,
        PLAIN,
        interval=900,
        feed=feed,
        etag='"new"',
        last_modified=None,
        headers={},
        permanent_redirect="https://b.cn/rss",
        rng=rng(),
    )
    assert ok.etag == '"new"' and ok.error_count == 0 and ok.last_error is None
    assert ok.redirected_to == "https://b.cn/rss"
    assert ok.next_check_at == NOW + timedelta(hours=2)
    not_modified = after_fetched(
        ok,
        NOW,
        PLAIN,
        interval=900,
        feed=None,
        etag=None,
        last_modified=None,
        headers={},
        permanent_redirect=None,
        rng=rng(),
    )
    assert not_modified.etag == '"new"'  # a 304 without validators keeps the old ones
    failed = after_error(ok, NOW, PLAIN, message="HTTP 500", rng=rng())
    assert failed.error_count == 1 and failed.last_error == "HTTP 500"
    assert failed.disabled_reason is None and failed.etag == '"new"'
    gone = after_error(failed, NOW, PLAIN, message="HTTP 410", gone=True, rng=rng())
    assert gone.disabled_reason is not None and gone.error_count == 2
