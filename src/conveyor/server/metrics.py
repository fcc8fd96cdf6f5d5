"""Prometheus metrics: job counts by queue and state, queue lag, live workers, HTTP request counts.

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
    """Reads the backend's queue gauges and the live workers at scrape time.

    ``conveyor_jobs{queue,status}``, ``conveyor_queue_oldest_pending_age_seconds{queue}``,
    ``conveyor_queue_paused{queue}``, ``conveyor_workers``; on PostgreSQL the finished
    counts of a large table are estimates (see docs/observability.md).
    """

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The backend gauges: one gauges read, one queue settings read and one registry read per scrape."""
        gauges = self.app.backend.queue_gauges()
        jobs = GaugeMetricFamily("conveyor_jobs", "Jobs by queue and status.", labels=["queue", "status"])
        ages = GaugeMetricFamily(
            "conveyor_queue_oldest_pending_age_seconds",
            "Seconds since the oldest due pending job of the queue fell due (0 when none waits).",
            labels=["queue"],
        )
        paused = GaugeMetricFamily(
            "conveyor_queue_paused", "1 while the queue is paused (not claimed from).", labels=["queue"]
        )
        # Queue settings (flow control): only managed queues have any, and a paused queue is
        # reported even while it holds no jobs.
        settings = {u.settings.name: u.settings for u in self.app.backend.queue_usage()}
        totals = dict.fromkeys(ALL_STATES, 0)
        oldest = 0.0
        for queue, queue_gauges in gauges.queues.items():
            for state in ALL_STATES:
                n = queue_gauges.counts.get(state, 0)
                jobs.add_metric([queue, state], n)
                totals[state] += n
            age = queue_gauges.oldest_pending_age_s or 0.0
            ages.add_metric([queue], age)
            oldest = max(oldest, age)
        for queue in sorted(gauges.queues.keys() | settings.keys()):
            stored = settings.get(queue)
            paused.add_metric([queue], 1.0 if stored is not None and stored.paused else 0.0)
        yield jobs
        yield ages
        yield paused
        by_status = GaugeMetricFamily("conveyor_jobs_total_by_status", "Jobs by status.", labels=["status"])
        for state in ALL_STATES:
            by_status.add_metric([state], totals[state])
        yield by_status
        yield GaugeMetricFamily(
            "conveyor_oldest_pending_age_seconds",
            "Age of the oldest due pending job of any queue (0 when none).",
            value=oldest,
        )
        yield GaugeMetricFamily(
            "conveyor_workers", "Live workers (registered and heartbeating).", value=len(self.app.workers())
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
