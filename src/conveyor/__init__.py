"""Conveyor: a background job queue for Python that does not drop work.

This package is where the parts meet: the built-in features plug into the App here.
"""

from typing import Any

from . import backoff
from .app import App
from .backends.base import AttemptRecord
from .context import JobContext, current_job
from .errors import (
    AlertNotFound,
    BadURL,
    ConfigurationError,
    ConveyorError,
    DuplicateTask,
    InvalidAlert,
    InvalidArguments,
    InvalidGroup,
    InvalidLimit,
    InvalidName,
    InvalidPayload,
    InvalidSchedule,
    InvalidState,
    InvalidStatus,
    InvalidWindow,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PayloadTooLarge,
    Permanent,
    RetryAfter,
    ScheduleNotFound,
    SchemaMismatch,
    TaskTimeout,
    UnknownTask,
)
from .job import Job, JobPage
from .states import ALL_STATES
from .task import Task
from .webhooks import WEBHOOKS, InvalidSignature, sign, verify_signature
from .worker import Worker

App.add_built_in(WEBHOOKS)


def _asgi(app: App, api_keys: Any = None, *, api_key_file: str | None = None) -> Any:
    """``App.asgi()``: the server package (and Starlette) are imported only when asked for."""
    from .server.mount import asgi_app

    return asgi_app(app, api_keys, api_key_file=api_key_file)


App.asgi_factory = _asgi

__version__ = "0.1.0"

__all__ = [
    "ALL_STATES",
    "AlertNotFound",
    "App",
    "AttemptRecord",
    "BadURL",
    "ConfigurationError",
    "ConveyorError",
    "DuplicateTask",
    "InvalidAlert",
    "InvalidArguments",
    "InvalidGroup",
    "InvalidLimit",
    "InvalidName",
    "InvalidPayload",
    "InvalidSchedule",
    "InvalidSignature",
    "InvalidState",
    "InvalidStatus",
    "InvalidWindow",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "JobPage",
    "PayloadTooLarge",
    "Permanent",
    "RetryAfter",
    "ScheduleNotFound",
    "SchemaMismatch",
    "Task",
    "TaskTimeout",
    "UnknownTask",
    "Worker",
    "__version__",
    "backoff",
    "current_job",
    "sign",
    "verify_signature",
]
