"""Prometheus metrics: request counts and latency here, per-source figures from storage.

Per-source figures are read from the database at scrape time rather than counted in memory, so
they are right whichever process polled (``--role worker`` beside ``--role web``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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


class Metrics:
    def __init__(self, storage: Storage) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "feedhub_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "feedhub_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.registry.register(SourceCollector(storage))
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status))
        if children is None:  # labels() costs a lookup and a lock: do it once per pair
            children = (self.requests.labels(route, str(status)), self.latency.labels(route))
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
