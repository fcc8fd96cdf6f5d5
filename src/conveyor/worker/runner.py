"""The Worker: claims batches, hands them to the Executor, and shuts down gracefully.

Threads: the caller's thread runs the fetch loop; the Executor runs the jobs;
the Completer writes their outcomes in batches; the periodic services (the
heartbeat renewing leases, the reaper requeueing lapsed ones) each run their own
loop.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..backends.base import ClaimedJob, ClaimRequest, ClaimsOnWake, Outcome, WorkerBeat
from ..context import JobContext
from ..task import check_name
from ..version import VERSION
from .attempt import Attempt
from .completer import Completer, Written
from .executor import Executor
from .faults import exit_on_memory_error, fault_point_from_environment, limit_memory
from .metrics import WorkerMetrics, supervisor_run_dir
from .prefetch import Prefetch
from .recovery import RetryDelay, error_line
from .services import (
    Alerter,
    Heartbeat,
    MetricsService,
    PeriodicService,
    ProgressWriter,
    Pruner,
    Reaper,
    Scheduler,
    WorkerRegistry,
)

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("conveyor.worker")
#: A wait for jobs shorter than this means jobs were due that the claim could not take.
_THROTTLED_WAKE = 0.002
_THROTTLE_BASE = 0.0005
_THROTTLE_CAP = 0.02
#: How long a claim from limited queues waits for more free slots after the first one.
_GATHER_SLOTS = 0.005


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What ``process_batch`` did: runs in total and how each ended (a value, frozen)."""

    processed: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0

    def to_dict(self) -> dict[str, int]:
        """The JSON shape of ``POST /api/queue/process``."""
        return {
            "processed": self.processed,
            "completed": self.completed,
            "failed": self.failed,
            "retried": self.retried,
            "cancelled": self.cancelled,
        }


class Worker:
    """Runs an App's jobs from a set of queues with bounded concurrency."""

    def __init__(
        self,
        app: App,
        queues: Iterable[str] | None = None,
        concurrency: int | None = None,
        *,
        lease: float | None = None,
        heartbeat: float | None = None,
        grace: float | None = None,
        reaper_interval: float | None = None,
        prefetch: int | None = None,
        idle_wait: float = 1.0,
        install_signal_handlers: bool = True,
        max_retry_delay: float | None = None,
        schedules: bool = True,
        metrics: WorkerMetrics | None = None,
        max_memory: int | None = None,
    ) -> None:
        if max_retry_delay is not None and max_retry_delay < 0:
            raise ValueError(f"max_retry_delay must be None or >= 0 seconds, got {max_retry_delay!r}")
        overrides: dict[str, Any] = {
            "lease": lease,
            "heartbeat": heartbeat,
            "grace": grace,
            "reaper_interval": reaper_interval,
            "concurrency": concurrency,
        }
        self.app = app
        self.settings = replace(app.settings, **{k: v for k, v in overrides.items() if v is not None})
        if lease is not None and heartbeat is None:
            self.settings = replace(self.settings, heartbeat=None)
        self.settings.validate()
        names = list(queues) if queues else sorted({t.defaults.queue for t in app.tasks.values()})
        self.queues = tuple(check_name("queue", q) for q in names) or ("default",)
        self.concurrency = self.settings.concurrency
        #: How many jobs are claimed beyond the running ones, so a slot rarely waits for a
        #: round trip: adaptive by default, fixed with ``prefetch=N`` (see worker/prefetch.py).
        self.prefetch_policy = Prefetch(self.concurrency, self.settings.lease, fixed=prefetch)
        self.idle_wait = idle_wait
        self._capacity = self._refill_below = 0
        self._size_buffer()
        #: True while the fetch loop waits for the buffer to drain below ``_refill_below``.
        self._awaiting_refill = False
        #: Free run slots a claim from limited queues waits to gather (up to _GATHER_SLOTS seconds).
        self._slot_batch = max(1, self.concurrency // 4)
        self.install_signal_handlers = install_signal_handlers
        #: Seconds a retry waits at most, whatever its backoff or RetryAfter asked (None:
        #: as asked). 0 makes retries due at once: ``conveyor.testing.drain`` uses it.
        self.max_retry_delay = max_retry_delay
        #: Bytes of address space this process may use while it runs (``--max-memory``), or None.
        self.max_memory = max_memory
        #: Where this worker fails on purpose (``CONVEYOR_FAULT_POINT``, read once), or None.
        self.fault = fault_point_from_environment()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.backend = app.backend
        #: The backend, when it can claim in the round trip that wakes an idle worker (Redis).
        self._wake_claimer = self.backend if isinstance(self.backend, ClaimsOnWake) else None
        #: Prometheus metrics (``--metrics-port``), or None: nothing is recorded.
        self.metrics = metrics
        self.executor = self._new_executor()
        self.completer = Completer(self.backend, self._written)
        self.inflight: dict[str, Attempt] = {}
        self._busy = 0  # claimed jobs not yet decided
        self._cv = threading.Condition()
        self._stopping = threading.Event()
        self._force = threading.Event()
        self.counts = {"completed": 0, "failed": 0, "retry": 0, "cancelled": 0, "released": 0}
        self.heartbeat = Heartbeat(
            self.backend,
            self.settings.heartbeat_interval,
            self.settings.lease,
            held=self._held_attempts,
            on_lost=self._lease_lost,
            on_cancel_requested=self._cancel_requested,
        )
        self.reaper = Reaper(self.backend, self.settings.reaper_interval)
        #: Lists this worker in the backend (``conveyor workers``), renewed with the heartbeat.
        self.registry = WorkerRegistry(self.backend, self.settings.heartbeat_interval, self._describe)
        self.progress = ProgressWriter(self.backend, self._held_attempts)
        self.started_at = time.time()
        # The maintenance services: safe with any number of workers (see each module).
        #: None with ``schedules=False`` (``conveyor worker --no-schedules``).
        self.scheduler = Scheduler(app, self.settings.scheduler_interval) if schedules else None
        self.pruner = Pruner(self.backend, self.settings.retention, self.settings.pruner_interval)
        self.alerter = Alerter(app, self.settings.alerter_interval)
        maintenance: tuple[PeriodicService, ...] = (self.pruner, self.alerter)
        if self.scheduler is not None:
            maintenance = (self.scheduler, *maintenance)
        #: Everything ``run`` starts beside the fetch loop; a new service is one more entry.
        self.services: tuple[PeriodicService, ...] = (
            self.heartbeat,
            self.reaper,
            self.registry,
            self.progress,
        )
        self.metrics_service: MetricsService | None = None
        if metrics is not None:
            metrics.set_slots(self.concurrency)
            metrics.serve_queues(self.queues)
            self.metrics_service = MetricsService(metrics, self._running_count, run_dir=supervisor_run_dir())
            self.services += (self.metrics_service,)
        self.services += maintenance
        self._started = False

    def __repr__(self) -> str:
        return f"<Worker {self.id} queues={','.join(self.queues)} concurrency={self.concurrency}>"

    # -- public ------------------------------------------------------------------
    def run(self, *, burst: bool = False) -> None:
        """Work until ``stop()`` or SIGTERM/SIGINT; with ``burst``, until nothing is due."""
        self._install_signals()
        if self.max_memory is not None:
            limit_memory(self.max_memory)
        self._start()
        log.info(
            "worker %s serving %s (concurrency %d, lease %gs)",
            self.id,
            ",".join(self.queues),
            self.concurrency,
            self.settings.lease,
        )
        try:
            self._fetch_loop(burst)
        finally:
            self._shutdown()

    def stop(self, *, graceful: bool = True) -> None:
        """Stop claiming; finish running jobs within the grace period (or release them now)."""
        if not graceful:
            self._force.set()
        self._stopping.set()
        with self._cv:
            self._cv.notify_all()

    def process_batch(self, batch_size: int = 10) -> BatchResult:
        """Reap lapsed leases, claim at most ``batch_size`` due jobs, run them, and return."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self._start(services=False)
        self.heartbeat.start()
        before = dict(self.counts)
        claimed = 0
        try:
            self.reaper.run_once()
            while claimed < batch_size:
                jobs = self.backend.claim(self._request(min(batch_size - claimed, 500)))
                if not jobs:
                    break
                claimed += len(jobs)
                self._dispatch(jobs)
        finally:
            # Whatever happened, what was claimed runs to an outcome (or is released).
            if not self._wait_idle(None if claimed else 0.0):
                self._release_running()
            self.heartbeat.stop()
            self.completer.stop()
            self.executor.close()
            self._started = False
        delta = {k: self.counts[k] - before[k] for k in self.counts}
        return BatchResult(
            processed=claimed,
            completed=delta["completed"],
            failed=delta["failed"],
            retried=delta["retry"],
            cancelled=delta["cancelled"],
        )

    # -- start and stop ------------------------------------------------------------
    def _new_executor(self) -> Executor:
        on_start = None if self.metrics is None else self.metrics.attempt_started
        on_memory_error = self._memory_exhausted if self.max_memory is not None else None
        return Executor(self.concurrency, self.id, self._report, on_start, on_memory_error=on_memory_error)

    def _memory_exhausted(self, job_id: str, task: str) -> None:
        exit_on_memory_error(job_id, task, flush=lambda: self.completer.stop(timeout=5.0))

    def _install_signals(self) -> None:
        if not self.install_signal_handlers or threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                log.warning("second %s: releasing running jobs now", signal.Signals(signum).name)
                self.stop(graceful=False)
            else:
                log.info(
                    "%s: finishing running jobs (up to %gs), then exiting",
                    signal.Signals(signum).name,
                    self.settings.grace,
                )
                self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _start(self, services: bool = True) -> None:
        if self._started:
            return
        self._started = True
        self.executor = self._new_executor()
        self.executor.start()
        self.completer.start()
        if services:
            for service in self.services:
                service.start()

    def _shutdown(self) -> None:
        grace = 0.0 if self._force.is_set() else self.settings.grace
        self._release_unstarted()
        if not self._wait_idle(grace):
            self._release_running()
        for service in self.services:
            service.request_stop()
        for service in self.services:
            service.join()
        self._leave_registry()
        self.completer.stop()
        self.executor.close()
        if self.metrics_service is not None:
            self.metrics_service.run_once()  # the last outcomes, and a child's final snapshot
        self._started = False
        log.info("worker %s stopped: %s", self.id, self.counts)

    def _release_unstarted(self) -> None:
        with self._cv:
            waiting = [attempt for attempt in self.inflight.values() if attempt.started_at is None]
        self._release(waiting)

    def _release_running(self) -> None:
        with self._cv:
            running = list(self.inflight.values())
        for attempt in running:
            if attempt.decide():
                log.warning(
                    "job %s (%s) still running at shutdown: released", attempt.job.id, attempt.job.task
                )
                self.executor.cancel(attempt)
                self._report(
                    attempt,
                    attempt.outcome("released", self.id, error="worker shut down before the job finished"),
                )

    def _wait_idle(self, timeout: float | None) -> bool:
        """Wait until every claimed job is decided and written; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self.inflight:
                if self._force.is_set() and timeout is not None:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(0.1 if left is None else min(left, 0.1))
        return True

    def _leave_registry(self) -> None:
        try:
            self.registry.leave()
        except Exception as exc:  # noqa: BLE001 - the entry expires by itself anyway
            log.warning("could not take worker %s off the registry (%s)", self.id, error_line(exc))

    def _describe(self) -> WorkerBeat:
        """What the registry says about this worker now."""
        with self._cv:
            running = tuple(a.job.id for a in self.inflight.values() if a.started_at is not None)
        return WorkerBeat(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
            running=running,
            started_at=self.started_at,
            version=_version(),
        )

    # -- fetching ------------------------------------------------------------------
    def _request(self, limit: int, start_limit: int | None = None) -> ClaimRequest:
        # Jobs of managed (limited) queues count as started when claimed: take no more of
        # them than there are free run slots, so the prefetch buffer never hoards them.
        if start_limit is None:
            start_limit = self.concurrency - len(self.inflight)
        return ClaimRequest(self.queues, limit, self.settings.lease, self.id, max(0, start_limit))

    @property
    def prefetch(self) -> int:
        """Jobs this worker holds claimed beyond the running ones, now (its policy's target)."""
        return self.prefetch_policy.target()

    def _size_buffer(self) -> None:
        """With the condition held: the claim bounds from the prefetch policy's target now.

        Refill when the buffer (jobs beyond the running ones) is half empty: claims come
        in batches, and a slot rarely waits for a round trip.
        """
        target = self.prefetch_policy.target()
        self._capacity = self.concurrency + target
        self._refill_below = _refill_level(self.concurrency, target)

    def _fetch_loop(self, burst: bool) -> None:
        retry = RetryDelay()
        policy = self.prefetch_policy
        throttled = 0  # empty claims in a row although jobs were due (limits, pause)
        # True while the work on offer is from limited queues only (a claim with every run slot
        # busy got nothing): such jobs are claimed per free slot, so wait for slots, not the buffer.
        per_slot = False
        while not self._stopping.is_set():
            with self._cv:
                shed = self._excess_buffered()
                self._size_buffer()
                while not shed and not self._stopping.is_set() and self._busy >= self._refill_below:
                    self._awaiting_refill = True
                    self._cv.wait(0.5)
                    shed = self._excess_buffered()
                    self._size_buffer()
                self._awaiting_refill = False
                if not shed and per_slot:
                    shed = self._await_free_slots()
                if not shed:
                    room = self._capacity - self._busy
                    # A job holds its slot until its outcome is written (the completer batches
                    # writes), so limited queues are claimed for the jobs not in flight.
                    start_limit = self.concurrency - len(self.inflight)
            if shed:
                # Slower jobs than the buffer was sized for: what would wait longest goes back
                # to the queue (not an attempt), for other workers.
                self._release(shed)
                continue
            if self._stopping.is_set():
                return
            with self._cv:
                idle_before = not self.inflight
            try:
                asked = time.perf_counter()
                jobs = self.backend.claim(self._request(room, start_limit))
                if not jobs:
                    if burst:
                        if idle_before:
                            return  # nothing running, nothing due: a burst ends here
                        with self._cv:
                            self._cv.wait(0.05)
                        continue
                    if start_limit <= 0:
                        per_slot = True
                        continue
                    waited = time.monotonic()
                    if self._wake_claimer is not None:
                        # The claim rides with the wake-up (one round trip); the buffer only
                        # emptied meanwhile, so the same room and start limit still hold.
                        request = self._request(room, start_limit)
                        jobs = self._wake_claimer.wait_and_claim(request, self.idle_wait)
                    else:
                        self.backend.wait_for_jobs(self.queues, self.idle_wait)
                    if jobs:
                        throttled = 0
                    elif time.monotonic() - waited < _THROTTLED_WAKE:
                        # Due jobs that the claim could not take: a queue is paused or at its
                        # limit. Back off a little (doubling to a cap) instead of spinning.
                        throttled += 1
                        self._stopping.wait(min(_THROTTLE_CAP, _THROTTLE_BASE * 2 ** min(throttled, 8)))
                    else:
                        throttled = 0
                else:
                    throttled = 0
                    per_slot = per_slot and len(jobs) <= start_limit
                    took = time.perf_counter() - asked
                    with self._cv:
                        policy.observe_claim(took, len(jobs))
                retry.succeeded()
            except Exception as exc:  # noqa: BLE001 - the backend may be restarting
                delay = retry.failed()
                log.warning("claim failed (%s); retrying in %.1fs", error_line(exc), delay)
                self._stopping.wait(delay)
                continue
            if jobs and self._stopping.is_set():
                # Claimed after the stop was asked (the claim that rides with a wake-up runs on
                # the server whatever the worker does meanwhile): give them back unstarted.
                self._release([self._attempt_for(job) for job in jobs])
                return
            if jobs:
                if self.fault is not None:
                    self.fault.passed("after-claim")
                self._dispatch(jobs)  # (which yields the GIL to a slot that was waiting)

    def _await_free_slots(self) -> list[Attempt]:
        """With the condition held: wait for a free run slot, then briefly for a few more, so a
        claim from a limited queue takes several jobs rather than one per round trip. Returns
        early with the buffered attempts to give back if the buffer outgrew its target meanwhile."""
        while not self._stopping.is_set() and len(self.inflight) >= self.concurrency:
            self._cv.wait(0.5)
            if shed := self._excess_buffered():
                return shed
        deadline = time.monotonic() + _GATHER_SLOTS
        while not self._stopping.is_set() and len(self.inflight) > self.concurrency - self._slot_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cv.wait(left)
        return []

    def _excess_buffered(self) -> list[Attempt]:
        """With the condition held: the most recently claimed of the buffered (unstarted)
        attempts beyond the adaptive target, after telling the policy how long the oldest running
        attempt has run; none unless the buffer is well above the target (hysteresis)."""
        policy = self.prefetch_policy
        if not policy.adaptive:
            return []
        now = time.time()
        oldest: float | None = None
        waiting: list[Attempt] = []
        for attempt in self.inflight.values():
            started = attempt.started_at
            if started is None:
                if not attempt.decided:
                    waiting.append(attempt)
            elif oldest is None or started < oldest:
                oldest = started
        policy.observe_running(0.0 if oldest is None else now - oldest)
        target = policy.target()
        excess = len(waiting) - target
        if excess <= max(self.concurrency, target):
            return []
        return waiting[-excess:]

    def _release(self, attempts: list[Attempt]) -> None:
        """Give claimed attempts that have not started back to the queue (no attempt counted)."""
        for attempt in attempts:
            if attempt.decide():
                self._report(attempt, attempt.outcome("released", self.id))

    def _attempt_for(self, job: ClaimedJob) -> Attempt:
        """A claimed job as an Attempt this worker holds (in flight until its outcome is written)."""
        context = JobContext(
            job.id,
            job.task,
            job.queue,
            job.attempt,
            job.max_attempts,
            job.prior_attempts,
            trace_context=job.trace_context,
        )
        attempt = Attempt(job, self.app.tasks.get(job.task), context)
        with self._cv:
            self.inflight[job.id] = attempt
            self._busy += 1
        return attempt

    def _dispatch(self, jobs: list[ClaimedJob]) -> None:
        with self._cv:
            idle_slot = self._busy < self.concurrency
        for job in jobs:
            self.executor.submit(self._attempt_for(job))
        if idle_slot:
            # A slot thread was waiting for this job: let it take the GIL now rather than
            # when this thread next blocks, a claim's worth of Python later (pickup latency).
            time.sleep(0)

    # -- outcomes ------------------------------------------------------------------
    def _report(self, attempt: Attempt, outcome: Outcome) -> None:
        """Hand a decided outcome, with the jobs the App stores alongside it, to the completer."""
        if self.fault is not None and outcome.kind == "completed":
            self.fault.passed("after-run")
        if self.max_retry_delay is not None and outcome.retry_delay > self.max_retry_delay:
            outcome = replace(outcome, retry_delay=self.max_retry_delay)
        try:
            follow_ups = self.app.follow_ups(attempt.job, outcome)
        except Exception:  # a job must finish even if its follow-ups cannot be built
            log.exception("job %s: could not build the jobs that follow its outcome", attempt.job.id)
            follow_ups = ()
        if follow_ups:  # most outcomes have none: copy only when needed
            outcome = replace(outcome, follow_ups=follow_ups)
        with self._cv:
            self._busy -= 1
            if outcome.started_at is not None and outcome.finished_at is not None:
                self.prefetch_policy.observe_run(outcome.finished_at - outcome.started_at)
            # Wake the fetch loop only when it may claim again (or all is done), not per job;
            # a freed run slot is such a moment too (limited queues are claimed per free slot).
            if (
                self._awaiting_refill
                and self._busy < _refill_level(self.concurrency, self.prefetch_policy.target())
            ) or self._busy in (self.concurrency - 1, self.concurrency - self._slot_batch, 0):
                self._awaiting_refill = False
                self._cv.notify_all()
        self.completer.submit(attempt, outcome)

    def _written(self, batch: Written, applied: list[bool]) -> None:
        """Forget what the completer wrote, and count what applied."""
        with self._cv:
            for (attempt, outcome), ok in zip(batch, applied, strict=True):
                if self.inflight.get(attempt.job.id) is attempt:
                    del self.inflight[attempt.job.id]
                if ok:
                    self.counts[outcome.kind] += 1
            self._cv.notify_all()
        if self.metrics is not None:
            self.metrics.outcomes_written(batch, applied)

    # -- what the heartbeat learns -----------------------------------------------------
    def _held_attempts(self) -> list[Attempt]:
        with self._cv:
            return list(self.inflight.values())

    def _running_count(self) -> int:
        with self._cv:
            return sum(1 for a in self.inflight.values() if a.started_at is not None and not a.decided)

    def _lease_lost(self, attempt: Attempt) -> None:
        if self.metrics is not None and not attempt.lost:
            self.metrics.lease_lost(attempt.job.queue)
        attempt.lost = True
        log.warning(
            "job %s: lease lost (taken over after expiry); its result will be discarded", attempt.job.id
        )
        self.executor.cancel(attempt)

    def _cancel_requested(self, attempt: Attempt) -> None:
        attempt.context.request_cancel()
        if attempt.started_at is None and attempt.decide():
            self._report(attempt, attempt.outcome("cancelled", self.id, error="cancelled before it ran"))
        else:
            self.executor.cancel(attempt)

    # for tests and tools
    def wait_until_idle(self, timeout: float | None = None) -> bool:
        """Block until no claimed job is unfinished or unwritten; False on timeout."""
        return self._wait_idle(timeout)

    @property
    def stopping(self) -> bool:
        """True once stop was requested."""
        return self._stopping.is_set()

    def stats(self) -> dict[str, Any]:
        """This worker's counters."""
        with self._cv:
            prefetch = self.prefetch_policy.describe()
        return {
            "id": self.id,
            "queues": list(self.queues),
            "busy": self._busy,
            **self.counts,
            "prefetch": prefetch,
        }


def _refill_level(concurrency: int, target: int) -> int:
    """Claim again once fewer than this many jobs are claimed and undecided (half the buffer left)."""
    return concurrency + min(target, max(1, target // 2))


def _version() -> str:
    """This Conveyor's version (a constant: looking it up in the installed metadata slowed start-up)."""
    return VERSION
