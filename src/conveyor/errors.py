"""Exception classes: every error Conveyor raises names the offending value."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class of every error Conveyor raises on purpose."""


class ConfigurationError(ConveyorError):
    """Settings that cannot work together (e.g. a heartbeat not well inside the lease)."""


class InvalidName(ConveyorError, ValueError):
    """A queue or task name outside ``^[A-Za-z0-9_.-]{1,128}$``."""


class InvalidPayload(ConveyorError, ValueError):
    """Arguments that are not JSON, or a payload over the size limit."""


class PayloadTooLarge(InvalidPayload):
    """A payload larger than the configured limit (default 1 MiB)."""


class InvalidArguments(ConveyorError, TypeError):
    """Arguments that do not fit the task's function (a missing, extra or misspelt argument).

    Raised at enqueue when the producer has the task's code; a job whose stored
    arguments do not fit the worker's function fails at once, without retries.
    """


class UnknownTask(ConveyorError, LookupError):
    """A task name that no ``@app.task`` or ``app.declare`` registered."""


class DuplicateTask(ConveyorError):
    """Two tasks registered under one name in one App."""


class JobNotFound(ConveyorError, LookupError):
    """No job with that id."""


class InvalidState(ConveyorError):
    """The job is not in a state that allows the operation (e.g. retrying a completed job)."""


class InvalidLimit(ConveyorError, ValueError):
    """A queue limit that cannot work: a malformed rate (``"ten/s"``), zero or a negative count."""


class InvalidGroup(ConveyorError, ValueError):
    """A job group that is not a string of 1 to 200 characters."""


class InvalidStatus(ConveyorError, ValueError):
    """A status word that is not one of the six states."""


class BadURL(ConveyorError, ValueError):
    """A backend URL that no backend understands."""


class BackendUnavailable(ConveyorError):
    """The storage engine cannot be reached (yet); callers retry with backoff."""


class SchemaMismatch(ConveyorError):
    """The stored schema is older or newer than this version of Conveyor knows."""


class JobFailed(ConveyorError):
    """Raised by ``Job.result()`` when the job ended in ``failed`` (or ``cancelled``)."""

    def __init__(self, job_id: str, state: str, error: str | None, traceback: str | None) -> None:
        self.job_id = job_id
        self.state = state
        self.error = error
        self.traceback = traceback
        super().__init__(f"job {job_id} {state}: {error or 'no error recorded'}")


class Permanent(ConveyorError):
    """Raise from a task to skip the remaining attempts and go to the failure table."""


class RetryAfter(ConveyorError):
    """Raise from a task to retry after exactly ``seconds`` (the attempt counts)."""

    def __init__(self, seconds: float, message: str | None = None) -> None:
        if seconds < 0:
            raise ValueError(f"RetryAfter needs seconds >= 0, got {seconds!r}")
        self.seconds = float(seconds)
        super().__init__(message or f"retry requested after {self.seconds:g}s")


class TaskTimeout(ConveyorError):
    """Raised inside a task that ran past its ``timeout``; counts as a transient failure."""


class JobCancelled(ConveyorError):
    """Raise from a task (or raised into an async one) when its cancellation was requested."""


class InvalidSchedule(ConveyorError, ValueError):
    """A schedule that cannot run: a bad cron expression, an unknown time zone, a bad period."""


class ScheduleNotFound(ConveyorError, LookupError):
    """No schedule with that name."""


class InvalidAlert(ConveyorError, ValueError):
    """A failure alert that cannot work: a bad URL, threshold or window."""


class AlertNotFound(ConveyorError, LookupError):
    """No alert with that name."""


class InvalidWindow(ConveyorError, ValueError):
    """A time window an operation cannot read: throughput over fewer than 1 or more than 1440 minutes."""
