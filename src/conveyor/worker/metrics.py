"""A worker's Prometheus metrics: what started, how it ended, how long it waited and ran.

Recording stays off the job's path. An executor thread that starts a job does
one ``deque.append`` (a few tens of nanoseconds, thread-safe without a lock);
the completer thread, which already handles outcomes in batches, adds each
write's outcomes to the counters and histograms and drains the queued starts;
the ``metrics`` service drains them too, so a long job's start shows within a
second. Counters are bumped once per (queue, task, outcome) group per batch.

Names and labels are the contract's (SPEC "Observability"): labels are queue,
task and outcome names only, never arguments, results or error text.

With ``--processes N`` every child records into prometheus-client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor to a
directory of its own run) and the supervisor serves their sum on one port:
:func:`serve_multiprocess`. prometheus-client is imported only when metrics
are asked for.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections import Counter as Tally
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..backends.base import Outcome
    from .attempt import Attempt

log = logging.getLogger("conveyor.worker")

#: Set by the supervisor in its children: where they write their metric files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds; from a millisecond job to a long report (the +Inf bucket catches the rest).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
#: Seconds from a job's due time to its start: queueing delay, from instant to an hour behind.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class WorkerMetrics:
    """The contract's worker metrics in one prometheus-client registry (or the multiprocess files).

    Each instance has a registry of its own (several workers in one process never
    clash); in a supervised child the values go to the multiprocess files anyway.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        reg = CollectorRegistry(auto_describe=True) if registry is None else registry
        self.registry = reg
        self.started = Counter(
            "conveyor_jobs_started", "Attempts started, by queue and task.", ["queue", "task"], registry=reg
        )
        self.finished = Counter(
            "conveyor_jobs_finished",
            "Attempts ended (completed, failed, retry, cancelled, released), by queue, task and outcome.",
            ["queue", "task", "outcome"],
            registry=reg,
        )
        self.duration = Histogram(
            "conveyor_job_duration_seconds",
            "Run time of an attempt, start to end.",
            ["queue", "task"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.wait = Histogram(
            "conveyor_job_wait_seconds",
            "Time from a job's due time to the start of its attempt.",
            ["queue", "task"],
            buckets=WAIT_BUCKETS,
            registry=reg,
        )
        self.slots = Gauge(
            "conveyor_worker_slots",
            "Jobs the worker may run at once.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.busy_slots = Gauge(
            "conveyor_worker_busy_slots",
            "Jobs the worker is running now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.leases_lost = Counter(
            "conveyor_leases_lost",
            "Attempts whose lease lapsed and was taken over before they ended, by queue.",
            ["queue"],
            registry=reg,
        )
        #: (queue, task, wait seconds) of attempts started and not yet counted.
        self._starts: deque[tuple[str, str, float]] = deque()
        self._children: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()  # the completer and the metrics service both flush

    # -- the hot path ----------------------------------------------------------------
    def attempt_started(self, attempt: Attempt) -> None:
        """An executor thread started ``attempt`` (one append: the counting happens later)."""
        job = attempt.job
        started = attempt.started_at or 0.0
        self._starts.append((job.queue, job.task, started - job.run_at))

    # -- batches, off the job's path ---------------------------------------------------
    def flush_starts(self) -> None:
        """Count the attempts started since the last flush."""
        starts = self._starts
        if not starts:
            return
        with self._lock:
            tally: Tally[tuple[str, str]] = Tally()
            observe_wait = self._wait
            while starts:
                try:
                    queue, task, waited = starts.popleft()
                except IndexError:
                    break
                tally[queue, task] += 1
                observe_wait(queue, task).observe(waited if waited > 0.0 else 0.0)
            for (queue, task), n in tally.items():
                self._child(self.started, queue, task).inc(n)

    def outcomes_written(self, batch: Sequence[tuple[Attempt, Outcome]], applied: Sequence[bool]) -> None:
        """Count one completer write: applied outcomes, their run times, and fenced-off ones."""
        self.flush_starts()  # a start is counted no later than its attempt's end
        with self._lock:
            ended: Tally[tuple[str, str, str]] = Tally()
            lost: Tally[str] = Tally()
            for (attempt, outcome), ok in zip(batch, applied, strict=True):
                job = attempt.job
                if not ok:
                    if not attempt.lost:  # the heartbeat did not see it first
                        lost[job.queue] += 1
                    continue
                ended[job.queue, job.task, outcome.kind] += 1
                if outcome.started_at is not None and outcome.finished_at is not None:
                    ran = outcome.finished_at - outcome.started_at
                    self._child(self.duration, job.queue, job.task).observe(ran if ran > 0.0 else 0.0)
            for (queue, task, kind), n in ended.items():
                self._child(self.finished, queue, task, kind).inc(n)
            for queue, n in lost.items():
                self._child(self.leases_lost, queue).inc(n)

    def lease_lost(self, queue: str) -> None:
        """The heartbeat learned that an attempt of ``queue`` lost its lease."""
        with self._lock:
            self._child(self.leases_lost, queue).inc()

    def set_slots(self, slots: int) -> None:
        """How many jobs the worker may run at once (its concurrency)."""
        self.slots.set(slots)

    def set_busy(self, busy: int) -> None:
        """How many jobs run now."""
        self.busy_slots.set(busy)

    def _wait(self, queue: str, task: str) -> Any:
        return self._child(self.wait, queue, task)

    def _child(self, metric: Any, *labels: str) -> Any:
        # labels() costs a lookup and a lock; the child objects are kept per label set.
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


# -- serving -----------------------------------------------------------------------------
def serve(metrics: WorkerMetrics, port: int, host: str = "0.0.0.0") -> Any:
    """Serve ``metrics`` at ``http://host:port/metrics`` on a daemon thread; returns the server."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("worker metrics at http://%s:%d/metrics", host, port)
    return server


class MultiprocessMetrics:
    """The supervisor's side of ``--processes N --metrics-port P``: a run directory, one port.

    Children find the directory in ``PROMETHEUS_MULTIPROC_DIR`` (see :meth:`child_env`)
    and write their metrics there; the supervisor sums them at each scrape, drops the
    live gauges of a child that exited (:meth:`process_exited`), and removes the
    directory when it stops.
    """

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        self.directory = tempfile.mkdtemp(prefix=f"conveyor-metrics-{os.getpid()}-")
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        self.server, _thread = start_http_server(port, addr=host, registry=registry)
        log.info("worker metrics (all processes) at http://%s:%d/metrics", host, port)

    def child_env(self) -> dict[str, str]:
        """What a child's environment needs to record into this run."""
        return {MULTIPROC_ENV: self.directory}

    def process_exited(self, pid: int) -> None:
        """Forget the live gauges of a child that is gone (its counters stay in the sum)."""
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop serving and remove the run directory."""
        self.server.shutdown()
        shutil.rmtree(self.directory, ignore_errors=True)


def recording_for_supervisor() -> bool:
    """True in a child whose supervisor serves the metrics (it records, it does not serve)."""
    return bool(os.environ.get(MULTIPROC_ENV))
