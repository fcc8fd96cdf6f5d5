"""The Worker: claims batches, runs them through the Executor, writes outcomes in batches.

Threads: the caller's thread runs the fetch loop; one writer thread batches
outcomes into ``finish_many``; the heartbeat renews leases (and carries cancel
requests); the reaper returns lapsed leases to the queue.
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

from ..backends.base import ClaimedJob, ClaimRequest, Outcome
from ..context import JobContext
from ..task import check_name
from .execution import Execution
from .executor import Executor
from .services import Backoff, PeriodicService, describe

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("conveyor.worker")


@dataclass
class BatchResult:
    """What ``process_batch`` did."""

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
    ) -> None:
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
        #: Jobs claimed beyond the running ones, so a slot never waits for a round trip.
        self.prefetch = self.concurrency if prefetch is None else max(0, prefetch)
        self.idle_wait = idle_wait
        # Refill when the prefetched buffer (jobs beyond the running ones) is half
        # empty: claims come in batches, and a slot rarely waits for a round trip.
        self._refill_below = min(
            self.concurrency + self.prefetch, self.concurrency + max(1, self.prefetch // 2)
        )
        self.install_signal_handlers = install_signal_handlers
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.backend = app.backend
        self.executor = Executor(self.concurrency, self.id, self._on_outcome)
        self.inflight: dict[str, Execution] = {}
        self._busy = 0  # claimed jobs not yet decided
        self._cv = threading.Condition()
        self._outcomes: list[tuple[Execution, Outcome]] = []
        self._writer_cv = threading.Condition()
        self._stopping = threading.Event()
        self._force = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_stop = False
        self.counts = {"completed": 0, "failed": 0, "retry": 0, "cancelled": 0, "released": 0}
        self.heartbeat = PeriodicService("heartbeat", self.settings.heartbeat_interval, self._heartbeat)
        self.reaper = PeriodicService("reaper", self.settings.reaper_interval, self._reap)
        self._started = False

    def __repr__(self) -> str:
        return f"<Worker {self.id} queues={','.join(self.queues)} concurrency={self.concurrency}>"

    # -- public ------------------------------------------------------------------
    def run(self, *, burst: bool = False) -> None:
        """Work until ``stop()`` or SIGTERM/SIGINT; with ``burst``, until nothing is due."""
        self._install_signals()
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
            self._reap()
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
            self._stop_writer()
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
        self._writer_stop = False
        self.executor = Executor(self.concurrency, self.id, self._on_outcome)
        self.executor.start()
        self._writer = threading.Thread(target=self._writer_main, name="conveyor-writer", daemon=True)
        self._writer.start()
        if services:
            self.heartbeat.start()
            self.reaper.start()

    def _shutdown(self) -> None:
        grace = 0.0 if self._force.is_set() else self.settings.grace
        self._release_unstarted()
        if not self._wait_idle(grace):
            self._release_running()
        self.heartbeat.stop()
        self.reaper.stop()
        self._stop_writer()
        self.executor.close()
        self._started = False
        log.info("worker %s stopped: %s", self.id, self.counts)

    def _release_unstarted(self) -> None:
        with self._cv:
            waiting = [ex for ex in self.inflight.values() if ex.started_at is None]
        for ex in waiting:
            if ex.decide():
                self._on_outcome(ex, ex.outcome("released", self.id))

    def _release_running(self) -> None:
        with self._cv:
            running = list(self.inflight.values())
        for ex in running:
            if ex.decide():
                log.warning("job %s (%s) still running at shutdown: released", ex.job.id, ex.job.task)
                self.executor.cancel(ex)
                self._on_outcome(
                    ex, ex.outcome("released", self.id, error="worker shut down before the job finished")
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

    # -- fetching ------------------------------------------------------------------
    def _request(self, limit: int) -> ClaimRequest:
        return ClaimRequest(self.queues, limit, self.settings.lease, self.id)

    def _fetch_loop(self, burst: bool) -> None:
        capacity = self.concurrency + self.prefetch
        refill_below = self._refill_below
        backoff = Backoff()
        while not self._stopping.is_set():
            with self._cv:
                while not self._stopping.is_set() and self._busy >= refill_below:
                    self._cv.wait(0.5)
                room = capacity - self._busy
            if self._stopping.is_set():
                return
            with self._cv:
                idle_before = not self.inflight
            try:
                jobs = self.backend.claim(self._request(room))
                if not jobs:
                    if burst:
                        if idle_before:
                            return  # nothing running, nothing due: a burst ends here
                        with self._cv:
                            self._cv.wait(0.05)
                        continue
                    self.backend.wait_for_jobs(self.queues, self.idle_wait)
                backoff.succeeded()
            except Exception as exc:  # noqa: BLE001 - the backend may be restarting
                delay = backoff.failed()
                log.warning("claim failed (%s); retrying in %.1fs", describe(exc), delay)
                self._stopping.wait(delay)
                continue
            if jobs:
                self._dispatch(jobs)

    def _dispatch(self, jobs: list[ClaimedJob]) -> None:
        tasks = self.app.tasks
        for job in jobs:
            context = JobContext(job.id, job.task, job.queue, job.attempt, job.max_attempts)
            execution = Execution(job, tasks.get(job.task), context)
            with self._cv:
                self.inflight[job.id] = execution
                self._busy += 1
            self.executor.submit(execution)

    # -- outcomes ------------------------------------------------------------------
    def _on_outcome(self, execution: Execution, outcome: Outcome) -> None:
        if execution.job.on_complete:
            outcome = self._with_callback(execution, outcome)
        with self._cv:
            self._busy -= 1
            # Wake the fetch loop only when it may claim again (or all is done), not per job.
            if self._busy == self._refill_below - 1 or self._busy == 0:
                self._cv.notify_all()
        with self._writer_cv:
            self._outcomes.append((execution, outcome))
            self._writer_cv.notify()

    def _with_callback(self, execution: Execution, outcome: Outcome) -> Outcome:
        """Attach the on_complete callback job, written in one step with the outcome."""
        try:
            follow_ups = self.app.follow_ups(execution.job, outcome)
        except Exception:  # a job must finish even if its callback cannot be built
            log.exception("job %s: could not build its on_complete callback", execution.job.id)
            return outcome
        return replace(outcome, follow_ups=follow_ups) if follow_ups else outcome

    def _writer_main(self) -> None:
        backoff = Backoff()
        while True:
            with self._writer_cv:
                while not self._outcomes and not self._writer_stop:
                    self._writer_cv.wait()
                if not self._outcomes and self._writer_stop:
                    return
                batch, self._outcomes = self._outcomes, []
            try:
                applied = self.backend.finish_many([o for _, o in batch])
            except Exception as exc:  # noqa: BLE001 - keep the outcomes and retry
                delay = backoff.failed()
                log.warning(
                    "writing %d outcome(s) failed (%s); retrying in %.1fs", len(batch), describe(exc), delay
                )
                with self._writer_cv:
                    self._outcomes[:0] = batch
                time.sleep(delay)
                continue
            backoff.succeeded()
            self._after_write(batch, applied)

    def _after_write(self, batch: list[tuple[Execution, Outcome]], applied: list[bool]) -> None:
        with self._cv:
            for (execution, outcome), ok in zip(batch, applied, strict=True):
                if self.inflight.get(execution.job.id) is execution:
                    del self.inflight[execution.job.id]
                if ok:
                    self.counts[outcome.kind] += 1
                else:
                    log.info(
                        "job %s: lease was lost before its outcome (%s) was written; discarded",
                        execution.job.id,
                        outcome.kind,
                    )
            self._cv.notify_all()
        for (execution, outcome), ok in zip(batch, applied, strict=True):
            if ok and outcome.kind in ("retry", "failed"):
                log.warning(
                    "job %s (%s) attempt %d/%d %s: %s",
                    execution.job.id,
                    execution.job.task,
                    outcome.attempt,
                    execution.job.max_attempts,
                    "will retry" if outcome.kind == "retry" else "failed",
                    outcome.error,
                )

    def _stop_writer(self) -> None:
        with self._writer_cv:
            self._writer_stop = True
            self._writer_cv.notify()
        if self._writer is not None:
            self._writer.join(30)

    # -- services ------------------------------------------------------------------
    def _heartbeat(self) -> None:
        with self._cv:
            executions = list(self.inflight.values())
        if not executions:
            return
        renewal = self.backend.extend_leases([ex.lease for ex in executions], self.settings.lease)
        for ex in executions:
            if ex.decided:
                continue  # its outcome is written or on its way; the write is fenced anyway
            if ex.job.id in renewal.lost:
                ex.lost = True
                log.warning(
                    "job %s: lease lost (taken over after expiry); its result will be discarded", ex.job.id
                )
                self.executor.cancel(ex)
            elif ex.job.id in renewal.cancel_requested and not ex.context.cancel_requested:
                ex.context.request_cancel()
                if ex.started_at is None and ex.decide():
                    self._on_outcome(ex, ex.outcome("cancelled", self.id, error="cancelled before it ran"))
                else:
                    self.executor.cancel(ex)

    def _reap(self) -> None:
        for _ in range(20):
            result = self.backend.reap_expired(500)
            if result.requeued or result.failed:
                log.warning(
                    "reaper: %d job(s) with lapsed leases requeued, %d failed (attempts spent)",
                    result.requeued,
                    result.failed,
                )
            if result.requeued + result.failed < 500:
                return

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
        return {"id": self.id, "queues": list(self.queues), "busy": self._busy, **self.counts}
