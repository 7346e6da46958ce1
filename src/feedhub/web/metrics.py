"""Prometheus metrics: request counts and latency here, per-source figures from storage.

Per-source figures are read from the database at scrape time rather than counted in memory, so
they are right whichever process polled (``--role worker`` beside ``--role web``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from feedhub.errors import StorageError
from feedhub.storage.base import Storage


class SourceCollector(Collector):
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        try:
            states = self.storage.list_states()
            outcomes = self.storage.fetch_outcomes()
        except StorageError:
            return
        fetches = CounterMetricFamily(
            "feedhub_source_fetches", "Fetches per source by outcome", labels=["source", "outcome"]
        )
        for (source, outcome), count in sorted(outcomes.items()):
            fetches.add_metric([source, outcome], count)
        items = GaugeMetricFamily("feedhub_source_items", "Items stored", labels=["source"])
        success = GaugeMetricFamily(
            "feedhub_source_last_success_timestamp_seconds",
            "Time of the last successful poll",
            labels=["source"],
        )
        errors = GaugeMetricFamily(
            "feedhub_source_consecutive_errors", "Errors in a row", labels=["source"]
        )
        for state in states:
            items.add_metric([state.source_id], state.item_count)
            errors.add_metric([state.source_id], state.error_count)
            if state.last_success_at is not None:
                success.add_metric([state.source_id], state.last_success_at.timestamp())
        yield from (fetches, items, success, errors)


BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BOUNDS = (*(repr(b) for b in BUCKETS), "+Inf")  # the "le" labels


class Metrics:
    """Request counts and latency kept in plain dicts, turned into Prometheus families only
    when scraped: prometheus_client's per-call locks and label lookups cost more than a cached
    feed answer itself. Updated only on the event loop's thread."""

    def __init__(self, storage: Storage) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._counts: dict[tuple[str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # per route: bucket counts, then sum, count
        self.registry.register(_RequestCollector(self))
        self.registry.register(SourceCollector(storage))

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = [0.0] * (len(BUCKETS) + 3)
        histogram[bisect_left(BUCKETS, seconds)] += 1  # the last bucket is +Inf
        histogram[-2] += seconds
        histogram[-1] += 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _RequestCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        counts = dict(self.metrics._counts)
        latency = {route: list(h) for route, h in self.metrics._latency.items()}
        requests = CounterMetricFamily(
            "feedhub_http_requests", "HTTP requests by route and status", labels=["route", "status"]
        )
        for (route, status), n in sorted(counts.items()):
            requests.add_metric([route, str(status)], n)
        durations = HistogramMetricFamily(
            "feedhub_http_request_duration_seconds",
            "HTTP request latency by route",
            labels=["route"],
        )
        for route, h in sorted(latency.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, in_bucket in zip(_BOUNDS, h[: len(BUCKETS) + 1], strict=True):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            durations.add_metric([route], buckets, sum_value=h[-2])
        yield from (requests, durations)
