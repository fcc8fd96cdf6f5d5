"""Prometheus metrics: job counts by queue and state, queue lag, and HTTP request counts.

Counts only: no argument, result or error text ever becomes a label. Each server
has its own registry, so several servers (or tests) in one process never clash.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..app import App
from ..states import ALL_STATES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class JobCountsCollector(Collector):
    """Reads ``App.stats()`` at scrape time."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge family per scrape, from one stats query."""
        stats = self.app.stats()
        jobs = GaugeMetricFamily("conveyor_jobs", "Jobs by queue and status.", labels=["queue", "status"])
        for queue, counts in sorted(stats["queues"].items()):
            for state in ALL_STATES:
                jobs.add_metric([queue, state], counts.get(state, 0))
        yield jobs
        totals = GaugeMetricFamily("conveyor_jobs_total_by_status", "Jobs by status.", labels=["status"])
        for state in ALL_STATES:
            totals.add_metric([state], stats["counts"].get(state, 0))
        yield totals
        age = stats["oldest_pending_age_s"]
        yield GaugeMetricFamily(
            "conveyor_oldest_pending_age_seconds",
            "Age of the oldest due pending job (0 when none).",
            value=0.0 if age is None else float(age),
        )


class Metrics:
    """The registry of one server, with its HTTP request counters."""

    def __init__(self, app: App) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(JobCountsCollector(app))
        self.requests = Counter(
            "conveyor_http_requests",
            "HTTP API requests by route, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "conveyor_http_request_duration_seconds",
            "HTTP API request duration by route.",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        """The exposition text (runs the stats query)."""
        return generate_latest(self.registry)
