"""A worker's Prometheus metrics: what started, how it ended, how long it waited and ran.

Recording stays off the job's path. An executor thread that starts a job does
one ``deque.append`` of the attempt (tens of nanoseconds, thread-safe without a
lock); the completer thread, which already handles outcomes in batches, adds
each write's outcomes to plain tallies (a dict increment and a ``bisect`` per
histogram, about a microsecond a job in all) and drains the queued starts; the
``metrics`` service drains them too, so a long job's start shows within a
second. prometheus-client's own metric objects take a lock per increment and
per bucket (about 3 µs a job for the two histograms); the tallies are turned
into metric families only when scraped (:class:`TallyCollector`).

Names and labels are the contract's (SPEC "Observability"): labels are queue,
task and outcome names only, never arguments, results or error text.

With ``--processes N`` the supervisor serves the sum of its children on one
port: each child writes a snapshot of its tallies to ``<run dir>/<pid>.json``
every second and when it stops (:meth:`WorkerMetrics.write_snapshot`), and the
supervisor's collector adds the snapshots up at each scrape; the gauges count
only children still alive. prometheus-client is imported only when metrics are
asked for.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backends.base import Outcome
    from .attempt import Attempt

log = logging.getLogger("conveyor.worker")

#: Set by the supervisor in its children: where they write their snapshots.
RUN_DIR_ENV = "CONVEYOR_METRICS_DIR"

#: Seconds; from a millisecond job to a long report (the +Inf bucket catches the rest).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
#: Seconds from a job's due time to its start: queueing delay, from instant to an hour behind.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

#: name -> (kind, help, label names): the contract's metrics (names without ``_total``).
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "conveyor_jobs_started": ("counter", "Attempts started, by queue and task.", ("queue", "task")),
    "conveyor_jobs_finished": (
        "counter",
        "Attempts ended (completed, failed, retry, cancelled, released), by queue, task and outcome.",
        ("queue", "task", "outcome"),
    ),
    "conveyor_job_duration_seconds": (
        "histogram",
        "Run time of an attempt, start to end.",
        ("queue", "task"),
    ),
    "conveyor_job_wait_seconds": (
        "histogram",
        "Time from a job's due time to the start of its attempt.",
        ("queue", "task"),
    ),
    "conveyor_leases_lost": (
        "counter",
        "Attempts whose lease lapsed and was taken over before they ended, by queue.",
        ("queue",),
    ),
    "conveyor_worker_slots": ("gauge", "Jobs the worker may run at once.", ()),
    "conveyor_worker_busy_slots": ("gauge", "Jobs the worker is running now.", ()),
}
BUCKETS = {"conveyor_job_duration_seconds": DURATION_BUCKETS, "conveyor_job_wait_seconds": WAIT_BUCKETS}

#: A snapshot: {"counters": {name: {labels: n}}, "histograms": {name: {labels: [counts..., sum]}},
#: "gauges": {name: value}}; labels joined by "\x1f" (names never hold it).
Snapshot = dict[str, Any]
_SEP = "\x1f"


class WorkerMetrics:
    """The contract's worker metrics, tallied in plain Python and exposed at scrape time."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[tuple[str, ...], float]] = {
            "conveyor_jobs_started": {},
            "conveyor_jobs_finished": {},
            "conveyor_leases_lost": {},
        }
        #: name -> labels -> [count per bucket (non-cumulative, +Inf last)..., sum]
        self._histograms: dict[str, dict[tuple[str, ...], list[float]]] = {name: {} for name in BUCKETS}
        self._gauges: dict[str, float] = {"conveyor_worker_slots": 0.0, "conveyor_worker_busy_slots": 0.0}
        self._starts: deque[Attempt] = deque()
        self._lock = threading.Lock()  # the completer, the metrics service and scrapes meet here

    # -- the hot path ----------------------------------------------------------------
    def attempt_started(self, attempt: Attempt) -> None:
        """An executor thread started ``attempt``: one append, the counting happens later."""
        self._starts.append(attempt)

    # -- batches, off the job's path ---------------------------------------------------
    def flush_starts(self) -> None:
        """Count the attempts started since the last flush, with their wait times."""
        starts = self._starts
        if not starts:
            return
        with self._lock:
            started = self._counters["conveyor_jobs_started"]
            waits = self._histograms["conveyor_job_wait_seconds"]
            while starts:
                try:
                    attempt = starts.popleft()
                except IndexError:
                    break
                job = attempt.job
                key = (job.queue, job.task)
                started[key] = started.get(key, 0.0) + 1.0
                waited = (attempt.started_at or job.run_at) - job.run_at
                _observe(waits, key, WAIT_BUCKETS, waited if waited > 0.0 else 0.0)

    def outcomes_written(self, batch: Sequence[tuple[Attempt, Outcome]], applied: Sequence[bool]) -> None:
        """Count one completer write: applied outcomes, their run times, and fenced-off ones."""
        self.flush_starts()  # a start is counted no later than its attempt's end
        with self._lock:
            finished = self._counters["conveyor_jobs_finished"]
            lost = self._counters["conveyor_leases_lost"]
            durations = self._histograms["conveyor_job_duration_seconds"]
            for (attempt, outcome), ok in zip(batch, applied, strict=True):
                job = attempt.job
                if not ok:
                    if not attempt.lost:  # the heartbeat did not see it first
                        lost[(job.queue,)] = lost.get((job.queue,), 0.0) + 1.0
                    continue
                key = (job.queue, job.task, outcome.kind)
                finished[key] = finished.get(key, 0.0) + 1.0
                if outcome.started_at is not None and outcome.finished_at is not None:
                    ran = outcome.finished_at - outcome.started_at
                    _observe(durations, key[:2], DURATION_BUCKETS, ran if ran > 0.0 else 0.0)

    def lease_lost(self, queue: str) -> None:
        """The heartbeat learned that an attempt of ``queue`` lost its lease."""
        with self._lock:
            lost = self._counters["conveyor_leases_lost"]
            lost[(queue,)] = lost.get((queue,), 0.0) + 1.0

    def serve_queues(self, queues: Sequence[str]) -> None:
        """Start the per-queue lease counter of each served queue at 0 (a series exists before
        the first loss, so ``increase()`` and alerts see the first one)."""
        with self._lock:
            lost = self._counters["conveyor_leases_lost"]
            for queue in queues:
                lost.setdefault((queue,), 0.0)

    def set_slots(self, slots: int) -> None:
        """How many jobs the worker may run at once (its concurrency)."""
        self._gauges["conveyor_worker_slots"] = float(slots)

    def set_busy(self, busy: int) -> None:
        """How many jobs run now."""
        self._gauges["conveyor_worker_busy_slots"] = float(busy)

    # -- reading -------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Every tally now, as JSON-ready data (what a supervised child writes, what a scrape reads)."""
        self.flush_starts()
        with self._lock:
            return {
                "counters": {n: {_SEP.join(k): v for k, v in c.items()} for n, c in self._counters.items()},
                "histograms": {
                    n: {_SEP.join(k): list(v) for k, v in h.items()} for n, h in self._histograms.items()
                },
                "gauges": dict(self._gauges),
            }

    def write_snapshot(self, directory: str | Path) -> None:
        """Write :meth:`snapshot` to ``directory/<pid>.json`` atomically (a supervised child's call)."""
        target = Path(directory) / f"{os.getpid()}.json"
        scratch = target.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.snapshot()))
        os.replace(scratch, target)

    def collector(self) -> TallyCollector:
        """A prometheus-client collector exposing this worker's tallies."""
        return TallyCollector(lambda: [self.snapshot()])


def _observe(
    histogram: dict[tuple[str, ...], list[float]], key: tuple[str, ...], bounds: Sequence[float], x: float
) -> None:
    counts = histogram.get(key)
    if counts is None:
        counts = histogram[key] = [0.0] * (len(bounds) + 2)
    counts[bisect_left(bounds, x)] += 1.0  # le is inclusive: x == bound lands in that bucket
    counts[-1] += x


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The sum of several snapshots (counters, histograms and gauges alike)."""
    total: Snapshot = {"counters": {}, "histograms": {}, "gauges": {}}
    for snap in snapshots:
        for name, series in snap.get("counters", {}).items():
            into = total["counters"].setdefault(name, {})
            for labels, v in series.items():
                into[labels] = into.get(labels, 0.0) + v
        for name, series in snap.get("histograms", {}).items():
            into = total["histograms"].setdefault(name, {})
            for labels, counts in series.items():
                have = into.get(labels)
                into[labels] = (
                    list(counts) if have is None else [a + b for a, b in zip(have, counts, strict=True)]
                )
        for name, v in snap.get("gauges", {}).items():
            total["gauges"][name] = total["gauges"].get(name, 0.0) + v
    return total


class TallyCollector:
    """Turns snapshots (one worker's, or a supervisor's children's) into metric families."""

    def __init__(self, snapshots: Any) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Any]:
        """The contract's families, summed over the snapshots."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        snap = merge(self.snapshots())
        for name, (kind, doc, labels) in FAMILIES.items():
            if kind == "counter":
                counter = CounterMetricFamily(name, doc, labels=labels)
                for key, v in sorted(snap["counters"].get(name, {}).items()):
                    counter.add_metric(key.split(_SEP), v)
                yield counter
            elif kind == "histogram":
                histogram = HistogramMetricFamily(name, doc, labels=labels)
                bounds = BUCKETS[name]
                for key, counts in sorted(snap["histograms"].get(name, {}).items()):
                    cumulative, buckets = 0.0, []
                    for bound, n in zip((*(_le(b) for b in bounds), "+Inf"), counts[:-1], strict=True):
                        cumulative += n
                        buckets.append((bound, cumulative))
                    histogram.add_metric(key.split(_SEP), buckets, counts[-1])
                yield histogram
            else:
                yield GaugeMetricFamily(name, doc, value=snap["gauges"].get(name, 0.0))


def _le(bound: float) -> str:
    return repr(float(bound))


# -- serving -----------------------------------------------------------------------------
def serve(metrics: WorkerMetrics, port: int, host: str = "0.0.0.0") -> Any:
    """Serve ``metrics`` at ``http://host:port/metrics`` on a daemon thread; returns the server."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.collector())
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("worker metrics at http://%s:%d/metrics", host, port)
    return server


class SupervisorMetrics:
    """The supervisor's side of ``--processes N --metrics-port P``: a run directory, one port.

    Children find the directory in ``CONVEYOR_METRICS_DIR`` (see :meth:`child_env`)
    and write their snapshots there; each scrape sums them. A child that exited keeps
    its last counts in the sum (counters never go back), but its gauges drop out.
    The directory is removed when the supervisor stops.
    """

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.directory = tempfile.mkdtemp(prefix=f"conveyor-metrics-{os.getpid()}-")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TallyCollector(self._snapshots))
        self.server, _thread = start_http_server(port, addr=host, registry=registry)
        log.info("worker metrics (all processes) at http://%s:%d/metrics", host, port)

    def child_env(self) -> dict[str, str]:
        """What a child's environment needs to record into this run."""
        return {RUN_DIR_ENV: self.directory}

    def _snapshots(self) -> list[Snapshot]:
        snapshots = []
        for path in Path(self.directory).glob("*.json"):
            try:
                snap: Snapshot = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # removed or replaced under us: the next scrape reads it
            if not _alive(int(path.stem)):
                snap["gauges"] = {}
            snapshots.append(snap)
        return snapshots

    def close(self) -> None:
        """Stop serving and remove the run directory."""
        self.server.shutdown()
        shutil.rmtree(self.directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def supervisor_run_dir() -> str | None:
    """In a child whose supervisor serves the metrics: the directory to write snapshots to."""
    return os.environ.get(RUN_DIR_ENV) or None
