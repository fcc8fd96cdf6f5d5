"""One attempt at one claimed job, and how it turns into an Outcome."""

from __future__ import annotations

import json
import threading
import time
import traceback as tb
from dataclasses import dataclass, field, replace
from typing import Any

from ..backends.base import ClaimedJob, Lease, Outcome, OutcomeKind, decode_payload
from ..context import JobContext
from ..errors import InvalidArguments, JobCancelled, TaskTimeout
from ..task import Task
from ..tracing import ConsumerSpan

#: How much of a traceback the failure table keeps.
MAX_TRACEBACK_CHARS = 20_000


@dataclass(eq=False, slots=True)
class Attempt:
    """One attempt at a claimed job: its book-keeping while this worker holds the lease."""

    job: ClaimedJob
    task: Task[Any, Any] | None
    context: JobContext
    started_at: float | None = None
    #: Set once an outcome has been decided; later results are discarded (fencing).
    decided: bool = False
    #: The lease was taken over by someone else: nothing we write will apply.
    lost: bool = False
    thread_id: int | None = None
    future: Any = None  # the asyncio task of an async job
    #: The attempt's OpenTelemetry span (None without OpenTelemetry).
    span: ConsumerSpan | None = None
    #: ``context.progress_calls`` when its progress was last written.
    progress_written: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def lease(self) -> Lease:
        """The fence of this claim."""
        return Lease(self.job.id, self.job.lease_token)

    def outcome(
        self,
        kind: OutcomeKind,
        worker_id: str,
        *,
        result: str | None = None,
        error: str | None = None,
        traceback: str | None = None,
        retry_delay: float = 0.0,
    ) -> Outcome:
        """The Outcome to write for this attempt."""
        return Outcome(
            job_id=self.job.id,
            lease_token=self.job.lease_token,
            kind=kind,
            attempt=self.job.attempt,
            worker=worker_id,
            started_at=self.started_at,
            finished_at=time.time() if self.started_at is not None else None,
            result=result,
            error=error,
            traceback=traceback,
            retry_delay=retry_delay,
            status_code=self.context.status_code,
            response_excerpt=self.context.response_excerpt,
            trace_id=None if self.span is None else self.span.trace_id,
        )

    def decide(self) -> bool:
        """Claim the right to decide the outcome; False if it was already decided."""
        with self.lock:
            if self.decided:
                return False
            self.decided = True
            return True


def describe_error(exc: BaseException) -> tuple[str, str]:
    """The one-line error and the traceback text the failure table keeps."""
    if isinstance(exc, TaskTimeout):
        return str(exc), "".join(tb.format_exception(exc))[-MAX_TRACEBACK_CHARS:]
    message = f"{type(exc).__qualname__}: {exc}" if str(exc) else type(exc).__qualname__
    return message, "".join(tb.format_exception(exc))[-MAX_TRACEBACK_CHARS:]


class ResultNotJSON(TypeError):
    """A task returned something JSON cannot hold; retrying would not change that."""


def encode_result(value: Any) -> str:
    """A task's return value as stored JSON; raises ResultNotJSON naming what is not JSON."""
    if value is None:
        return "null"  # most tasks return nothing: no encoder for that
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultNotJSON(f"the task's return value is not JSON-serialisable: {exc}") from None


class ArgumentsDoNotBind(InvalidArguments):
    """The stored arguments cannot bind to this worker's function: no retry can change that.

    Only the check before the call raises this, so a TypeError (or InvalidArguments)
    raised inside the task is still an ordinary, retried error.
    """


def call_arguments(attempt: Attempt) -> tuple[list[Any], dict[str, Any]]:
    """The job's args and kwargs, bound to the task's signature before the call.

    Raises ArgumentsDoNotBind when they do not fit (a job enqueued by a producer that
    only declared the task, or stored before the function's signature changed).
    """
    args, kwargs = decode_payload(attempt.job.payload)
    check = attempt.task.arguments if attempt.task is not None else None
    if check is not None and (problem := check.problem(args, kwargs)) is not None:
        raise ArgumentsDoNotBind(str(check.error(problem, args, kwargs)))
    return args, kwargs


def timed_out(attempt: Attempt) -> TaskTimeout:
    """The error recorded for an attempt that ran past its task's ``timeout``."""
    timeout = attempt.task.defaults.timeout if attempt.task is not None else None
    return TaskTimeout(f"timed out after {timeout:g}s" if timeout is not None else "timed out")


def outcome_for_error(attempt: Attempt, exc: BaseException, worker_id: str) -> Outcome:
    """Classify an exception into retry / failed / cancelled with its delay."""
    if isinstance(exc, ResultNotJSON):
        # The side effects happened; a retry would only repeat them and fail again.
        return attempt.outcome("failed", worker_id, error=str(exc))
    if isinstance(exc, ArgumentsDoNotBind):
        # The function was never called: a traceback would only show the worker.
        return attempt.outcome("failed", worker_id, error=f"InvalidArguments: {exc}")
    message, trace = describe_error(exc)
    if isinstance(exc, JobCancelled):
        return attempt.outcome("cancelled", worker_id, error=message, traceback=trace)
    kind: OutcomeKind
    if attempt.task is None:
        # Deployed code lacks the task: another worker may have it, so retry later.
        kind = "retry" if attempt.job.run_in_submission < attempt.job.max_attempts else "failed"
        delay = 5.0
    else:
        policy = attempt.task.retry_policy
        # The stored max_attempts wins: it was fixed when the job was enqueued.
        if policy.max_attempts != attempt.job.max_attempts:
            policy = replace(policy, max_attempts=attempt.job.max_attempts)
        # Budget and backoff count this submission's runs: a resubmit starts both afresh.
        kind, delay = policy.classify(exc, attempt.job.run_in_submission)
    return attempt.outcome(kind, worker_id, error=message, traceback=trace, retry_delay=delay)
