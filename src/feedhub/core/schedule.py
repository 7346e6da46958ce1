"""When to poll a source next, and how its state changes after a poll. Pure: ``now`` comes in.

The delay after a successful poll starts from the source's interval and adapts to how often the
source really publishes (the gaps between its entries' dates), within half and eight times the
interval. The feed and the server can only lengthen it: RSS ``<ttl>``, ``Cache-Control: max-age``
and ``Expires`` are lower bounds, and ``<skipHours>``/``<skipDays>`` push it out of skipped
periods. The result is clamped to ``[min_interval, max_interval]`` and spread by jitter so that
sources configured together drift apart. After an error the delay doubles per consecutive error
from ``error_backoff`` up to ``max_error_backoff``, and a server's Retry-After is honoured.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from feedhub.models import ParsedFeed, SourceState
from feedhub.settings import ScheduleSettings

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)
_SMOOTHING = 0.5  # weight of the newest observation of the publishing interval
_HISTORY = timedelta(days=30)  # entry dates older than this say little about today's pace


def cache_lifetime(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the response says it stays fresh (Cache-Control max-age, else Expires)."""
    cache_control = headers.get("cache-control", "")
    if "no-store" in cache_control.lower() or "no-cache" in cache_control.lower():
        return None
    match = _MAX_AGE.search(cache_control)
    if match:
        return float(match.group(1))
    expires = headers.get("expires")
    if expires:
        try:
            when = parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    return None


def observed_interval(
    published: Iterable[datetime | None], now: datetime, previous: float | None
) -> float | None:
    """Mean seconds between the source's entries, smoothed with what was seen before.

    A source whose newest entry is old counts as slow: the time since that entry, halved, is a
    floor, so a feed that went quiet is polled less and less often.
    """
    times = sorted({t for t in published if t is not None and now - _HISTORY <= t <= now})
    if len(times) < 2:
        return previous
    gap = (times[-1] - times[0]).total_seconds() / (len(times) - 1)
    gap = max(gap, (now - times[-1]).total_seconds() / 2, 1.0)
    if previous is None:
        return gap
    return _SMOOTHING * gap + (1 - _SMOOTHING) * previous


def next_success_check(
    now: datetime,
    settings: ScheduleSettings,
    *,
    interval: float | None,
    publish_interval: float | None = None,
    ttl_minutes: int | None = None,
    cache_seconds: float | None = None,
    skip_hours: frozenset[int] = frozenset(),
    skip_days: frozenset[int] = frozenset(),
    rng: random.Random,
) -> datetime:
    base = interval or settings.default_interval
    delay = base
    if publish_interval is not None:
        delay = min(max(publish_interval, base / 2), base * 8)
    if ttl_minutes:
        delay = max(delay, ttl_minutes * 60.0)
    if cache_seconds:
        delay = max(delay, cache_seconds)
    delay = _jitter(delay, settings.jitter, rng)
    delay = min(max(delay, settings.min_interval), settings.max_interval)
    when = now + timedelta(seconds=delay)
    return _outside_skipped(when, skip_hours, skip_days, limit=now + timedelta(days=8))


def next_error_check(
    now: datetime,
    settings: ScheduleSettings,
    *,
    error_count: int,
    retry_after: datetime | None = None,
    rng: random.Random,
) -> datetime:
    exponent = min(max(error_count - 1, 0), 30)
    delay = min(settings.error_backoff * (2**exponent), settings.max_error_backoff)
    delay = _jitter(delay, settings.jitter, rng)
    delay = max(delay, settings.min_interval / 2)
    when = now + timedelta(seconds=delay)
    if retry_after is not None:
        ceiling = now + timedelta(seconds=max(settings.max_error_backoff, settings.max_interval))
        when = max(when, min(retry_after, ceiling))
    return when


def _jitter(delay: float, fraction: float, rng: random.Random) -> float:
    return delay * (1 + rng.uniform(-fraction, fraction)) if fraction else delay


def _outside_skipped(
    when: datetime, skip_hours: frozenset[int], skip_days: frozenset[int], *, limit: datetime
) -> datetime:
    """Move ``when`` (UTC) to the first hour that neither skipHours nor skipDays forbids."""
    if not skip_hours and not skip_days:
        return when
    if len(skip_hours) >= 24 or len(skip_days) >= 7:
        return when  # a feed that skips everything is misconfigured: ignore the hint
    current = when.astimezone(UTC)
    while current < limit:
        if current.hour not in skip_hours and current.weekday() not in skip_days:
            return current
        current = current.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return when


# --- state transitions -------------------------------------------------------------------------


def after_fetched(
    state: SourceState,
    now: datetime,
    settings: ScheduleSettings,
    *,
    interval: float | None,
    feed: ParsedFeed | None,
    etag: str | None,
    last_modified: str | None,
    headers: Mapping[str, str],
    permanent_redirect: str | None,
    rng: random.Random,
) -> SourceState:
    """State after a 200 (``feed`` given) or a 304 (``feed`` None)."""
    publish_interval = state.publish_interval
    if feed is not None:
        publish_interval = observed_interval(
            (item.published for item in feed.items), now, state.publish_interval
        )
    next_at = next_success_check(
        now,
        settings,
        interval=interval,
        publish_interval=publish_interval,
        ttl_minutes=feed.ttl_minutes if feed else None,
        cache_seconds=cache_lifetime(headers, now),
        skip_hours=feed.skip_hours if feed else frozenset(),
        skip_days=feed.skip_days if feed else frozenset(),
        rng=rng,
    )
    return replace(
        state,
        etag=etag if feed is not None else (etag or state.etag),
        last_modified=last_modified if feed is not None else (last_modified or state.last_modified),
        next_check_at=next_at,
        last_attempt_at=now,
        last_success_at=now,
        last_error=None,
        error_count=0,
        redirected_to=permanent_redirect or state.redirected_to,
        publish_interval=publish_interval,
    )


def after_error(
    state: SourceState,
    now: datetime,
    settings: ScheduleSettings,
    *,
    message: str,
    retry_after: datetime | None = None,
    gone: bool = False,
    rng: random.Random,
) -> SourceState:
    errors = state.error_count + 1
    return replace(
        state,
        next_check_at=next_error_check(
            now, settings, error_count=errors, retry_after=retry_after, rng=rng
        ),
        last_attempt_at=now,
        last_error=message,
        error_count=errors,
        disabled_reason="410 Gone: the publisher removed this feed"
        if gone
        else state.disabled_reason,
    )
