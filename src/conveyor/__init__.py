"""Conveyor: a background job queue for Python that does not drop work."""

from . import backoff
from .app import App
from .backends.base import AttemptRecord, JobRecord, Page
from .context import JobContext, current_job
from .errors import (
    BadURL,
    ConfigurationError,
    ConveyorError,
    DuplicateTask,
    InvalidName,
    InvalidPayload,
    InvalidState,
    InvalidStatus,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PayloadTooLarge,
    Permanent,
    RetryAfter,
    SchemaMismatch,
    TaskTimeout,
    UnknownTask,
)
from .http_task import InvalidSignature, verify_signature
from .job import Job
from .states import ALL_STATES
from .task import Task
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "ALL_STATES",
    "App",
    "AttemptRecord",
    "BadURL",
    "ConfigurationError",
    "ConveyorError",
    "DuplicateTask",
    "InvalidName",
    "InvalidPayload",
    "InvalidSignature",
    "InvalidState",
    "InvalidStatus",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "JobRecord",
    "Page",
    "PayloadTooLarge",
    "Permanent",
    "RetryAfter",
    "SchemaMismatch",
    "Task",
    "TaskTimeout",
    "UnknownTask",
    "Worker",
    "__version__",
    "backoff",
    "current_job",
    "verify_signature",
]
