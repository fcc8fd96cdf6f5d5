"""The completer: writes decided outcomes to the backend in batches, on its own thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..backends.base import Backend, Outcome
from .attempt import Attempt
from .recovery import RetryDelay, error_line

log = logging.getLogger("conveyor.worker")

#: One write's outcomes, each with the attempt it ends.
Written = list[tuple[Attempt, Outcome]]

#: Told after each write which outcomes applied (False: fenced off, the lease was lost).
OnWritten = Callable[[Written, list[bool]], None]


class Completer:
    """Batches outcomes into ``backend.finish_many`` on one thread, and drops none.

    Whatever is submitted while a write is under way goes into the next one, so
    under load one round trip carries many outcomes and at rest each goes at
    once. A failed write is retried, the same outcomes first, after a growing
    delay: the backend may be restarting. After each write, ``on_written(batch,
    applied)`` says which outcomes applied; one that did not was fenced off
    because its lease was lost (another worker holds the job now).
    """

    def __init__(self, backend: Backend, on_written: OnWritten, *, max_retry_delay: float = 10.0) -> None:
        self.backend = backend
        self.on_written = on_written
        self.max_retry_delay = max_retry_delay
        self._pending: Written = []
        self._pending_changed = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writing thread (a no-op while it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._write_loop, name="conveyor-completer", daemon=True)
        self._thread.start()

    def submit(self, attempt: Attempt, outcome: Outcome) -> None:
        """Queue one outcome for the next write (called once per job: keep it cheap)."""
        with self._pending_changed:
            self._pending.append((attempt, outcome))
            self._pending_changed.notify()

    def stop(self, timeout: float = 30.0) -> bool:
        """Write everything submitted, then end the thread; False if that took over ``timeout``."""
        with self._pending_changed:
            self._stopping = True
            self._pending_changed.notify()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def pending(self) -> int:
        """Outcomes submitted and not yet written."""
        with self._pending_changed:
            return len(self._pending)

    def _write_loop(self) -> None:
        retry = RetryDelay(cap=self.max_retry_delay)
        while True:
            with self._pending_changed:
                while not self._pending and not self._stopping:
                    self._pending_changed.wait()
                if not self._pending:
                    return  # stopping, and everything is written
                batch, self._pending = self._pending, []
            try:
                applied = self.backend.finish_many([outcome for _, outcome in batch])
            except Exception as exc:  # noqa: BLE001 - keep the outcomes and retry
                delay = retry.failed()
                log.warning(
                    "writing %d outcome(s) failed (%s); retrying in %.1fs", len(batch), error_line(exc), delay
                )
                with self._pending_changed:
                    self._pending[:0] = batch
                time.sleep(delay)
                continue
            retry.succeeded()
            self.on_written(batch, applied)
            _log_written(batch, applied)


def _log_written(batch: Written, applied: list[bool]) -> None:
    """One line per attempt outcome: INFO, WARNING for retry and failed (with the error line).

    The line names the task, job id, queue, attempt, outcome and run time, never
    arguments or results; the same fields ride on the record as ``attempt_outcome``
    so a JSON log formatter can emit them as fields.
    """
    if not log.isEnabledFor(logging.INFO):
        return
    for (attempt, outcome), ok in zip(batch, applied, strict=True):
        job = attempt.job
        kind = outcome.kind if ok else "discarded"
        ran = (
            outcome.finished_at - outcome.started_at
            if outcome.started_at is not None and outcome.finished_at is not None
            else None
        )
        fields = {
            "task": job.task,
            "id": job.id,
            "queue": job.queue,
            "attempt": outcome.attempt,
            "max_attempts": job.max_attempts,
            "outcome": kind,
            "duration": None if ran is None else round(ran, 6),
        }
        timing = "" if ran is None else f" (ran {ran:.3f}s)"
        if not ok:
            log.info(
                "%s %s [%s] attempt %d/%d: lease was lost before its outcome (%s) was written; discarded",
                job.task,
                job.id,
                job.queue,
                outcome.attempt,
                job.max_attempts,
                outcome.kind,
                extra={"attempt_outcome": fields},
            )
        elif outcome.kind in ("retry", "failed"):
            log.warning(
                "%s %s [%s] attempt %d/%d: %s%s: %s",
                job.task,
                job.id,
                job.queue,
                outcome.attempt,
                job.prior_attempts + job.max_attempts,  # the last attempt of this submission
                "will retry" if outcome.kind == "retry" else "failed",
                timing,
                outcome.error,
                extra={"attempt_outcome": fields},
            )
        else:
            log.info(
                "%s %s [%s] attempt %d/%d: %s%s",
                job.task,
                job.id,
                job.queue,
                outcome.attempt,
                job.max_attempts,
                outcome.kind,
                timing,
                extra={"attempt_outcome": fields},
            )
