"""``conveyor.current_job()``: what a running task can learn about its own job."""

from __future__ import annotations

import math
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

#: The longest progress message kept; longer ones are cut (progress is for people, not data).
MAX_PROGRESS_MESSAGE = 1000


@dataclass(slots=True)
class JobContext:
    """The running job's identity and its cooperative cancellation flag."""

    id: str
    task: str
    queue: str
    #: The attempt number, as the audit trail counts it (it keeps counting across resubmits).
    attempt: int
    max_attempts: int
    #: Attempts run before the latest resubmit: ``attempt - prior_attempts`` is this
    #: submission's run, and the last one is ``prior_attempts + max_attempts``.
    prior_attempts: int = 0
    # A plain flag, not an Event: one is made per job, and a bool is set atomically.
    _cancel: bool = field(default=False, repr=False)
    #: What the far side of an HTTP-style task answered; kept in this attempt's audit record.
    status_code: int | None = None
    response_excerpt: str | None = None
    #: The W3C traceparent stored with the job at enqueue (None: no trace).
    trace_context: str | None = None
    #: The latest ``progress()`` as (fraction, message, time), and how many calls so far;
    #: the worker writes the latest one at most a few times a second.
    reported_progress: tuple[float | None, str | None, float] | None = field(default=None, repr=False)
    progress_calls: int = field(default=0, repr=False)

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job; a sync task should stop soon."""
        return self._cancel

    def request_cancel(self) -> None:
        """Mark the job as asked to stop (the worker does this on a cancel request)."""
        self._cancel = True

    def record_response(self, status_code: int | None, excerpt: str | None) -> None:
        """Keep a response's status code and body excerpt in this attempt's audit record."""
        self.status_code = status_code
        self.response_excerpt = excerpt

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report how far the job has got: ``fraction`` from 0 to 1, and/or a short ``message``.

        Cheap however often it is called: the worker stores the latest report with the
        job at most a few times a second (``progress`` in the job's JSON).
        """
        if fraction is not None:
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
                raise TypeError(f"progress fraction must be a number from 0 to 1, got {fraction!r}")
            if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
                raise ValueError(f"progress fraction must be from 0 to 1, got {fraction!r}")
            fraction = float(fraction)
        if message is not None:
            if not isinstance(message, str):
                raise TypeError(f"progress message must be a string, got {type(message).__name__}")
            message = message[:MAX_PROGRESS_MESSAGE]
        self.reported_progress = (fraction, message, time.time())
        self.progress_calls += 1

    def raise_if_cancelled(self) -> None:
        """Raise ``conveyor.JobCancelled`` if cancellation was requested."""
        if self._cancel:
            from .errors import JobCancelled

            raise JobCancelled(f"job {self.id} was cancelled")


_current: ContextVar[JobContext | None] = ContextVar("conveyor_current_job", default=None)


def enter_job(context: JobContext) -> Token[JobContext | None]:
    """Make ``context`` what ``current_job()`` returns in this thread or task (the executor's call)."""
    return _current.set(context)


def leave_job(token: Token[JobContext | None]) -> None:
    """Undo the ``enter_job`` that returned ``token``."""
    _current.reset(token)


def running_job() -> JobContext | None:
    """The job this code runs for, or None outside a task (for code that works either way)."""
    return _current.get()


def current_job() -> JobContext:
    """The job this code runs for; raises RuntimeError outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("conveyor.current_job() called outside a running task")
    return ctx
