"""Tasks: a function registered on an App, with its options, and how to enqueue it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar

from .backoff import DEFAULT as DEFAULT_BACKOFF
from .backoff import BackoffPolicy
from .errors import InvalidName
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .app import App
    from .job import Job

P = ParamSpec("P")
R = TypeVar("R")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 4


def check_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid queue/task name, else raise InvalidName."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidName(f"invalid {kind} name {value!r}: names match ^[A-Za-z0-9_.-]{{1,128}}$")
    return value


def _exception_classes(name: str, value: Any) -> tuple[type[BaseException], ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{name} takes exception classes, got {item!r}")
    return tuple(items)


@dataclass(frozen=True)
class TaskDefaults:
    """What every enqueue of a task gets unless ``options`` overrides it."""

    queue: str = DEFAULT_QUEUE
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: float | None = None
    backoff: BackoffPolicy = DEFAULT_BACKOFF
    retry_on: tuple[type[BaseException], ...] = ()
    permanent_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        check_name("queue", self.queue)
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if not hasattr(self.backoff, "delay"):
            raise TypeError(f"backoff must be a policy from conveyor.backoff, got {self.backoff!r}")

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry settings as the worker applies them."""
        return RetryPolicy(self.max_attempts, self.backoff, self.retry_on, self.permanent_on)


@dataclass(frozen=True)
class EnqueueOptions:
    """Per-enqueue overrides (``Task.options(...)``); None means the task's default."""

    queue: str | None = None
    priority: int | None = None
    delay: float | timedelta | None = None
    run_at: datetime | float | None = None
    key: str | None = None
    key_mode: Literal["keep", "replace"] = "keep"
    max_attempts: int | None = None
    on_complete: str | None = None
    connection: Any = None


class Task(Generic[P, R]):
    """A registered task. Call it to run it inline; ``enqueue`` to run it on a worker."""

    def __init__(self, app: App, name: str, fn: Callable[P, R] | None, defaults: TaskDefaults) -> None:
        self.app = app
        self.name = check_name("task", name)
        self.fn = fn
        self.defaults = defaults
        self.retry_policy = defaults.retry_policy
        self.is_async = fn is not None and inspect.iscoroutinefunction(fn)
        if fn is not None:
            self.__doc__ = fn.__doc__
            self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.defaults.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no queue)."""
        if self.fn is None:
            raise TypeError(f"task {self.name!r} is declared here but its code lives elsewhere")
        return self.fn(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue a run with these arguments; returns the Job at once."""
        return self.app._enqueue_task(self, list(args), dict(kwargs), EnqueueOptions())

    def options(self, **options: Any) -> BoundTask[P, R]:
        """Override enqueue options: queue, priority, delay, run_at, key, key_mode, ..."""
        return BoundTask(self, EnqueueOptions(**options))


class BoundTask(Generic[P, R]):
    """A task with enqueue options applied: ``task.options(delay=60).enqueue(...)``."""

    def __init__(self, task: Task[P, R], options: EnqueueOptions) -> None:
        self.task = task
        self._options = options

    def options(self, **options: Any) -> BoundTask[P, R]:
        """Override more options."""
        return BoundTask(self.task, replace(self._options, **options))

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue with the bound options."""
        return self.task.app._enqueue_task(self.task, list(args), dict(kwargs), self._options)
