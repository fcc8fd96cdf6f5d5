"""Conveyor: a background job queue for Python that does not drop work.

This package is where the parts meet: the built-in features plug into the App here.
"""

from typing import TYPE_CHECKING, Any

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
from .version import VERSION
from .webhooks import WEBHOOKS, InvalidSignature, sign, verify_signature

if TYPE_CHECKING:
    from .worker import Worker

App.add_built_in(WEBHOOKS)


def _asgi(app: App, api_keys: Any = None, *, api_key_file: str | None = None) -> Any:
    """``App.asgi()``: the server package (and Starlette) are imported only when asked for."""
    from .server.mount import asgi_app

    return asgi_app(app, api_keys, api_key_file=api_key_file)


App.asgi_factory = _asgi

__version__ = VERSION

#: Public names imported on first use: a process that only enqueues never loads the worker run-time.
_LAZY = {"Worker": "worker"}


def __getattr__(name: str) -> Any:
    """``conveyor.Worker``: the worker package is imported when first asked for."""
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def __dir__() -> list[str]:
    """The module's names, with the public ones imported on first use (``Worker``) before they are."""
    return sorted(set(globals()) | set(__all__))
