"""Tasks: a function registered on an App, with its options, and how to enqueue it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .arguments import ArgumentCheck
from .backends.flow import check_group
from .backoff import DEFAULT as DEFAULT_BACKOFF
from .backoff import BackoffPolicy
from .builder import check_max_attempts, check_name, check_option_names, check_priority
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .app import App
    from .job import Job

__all__ = ["DEFAULT_MAX_ATTEMPTS", "DEFAULT_QUEUE", "BoundTask", "Task", "TaskDefaults", "check_name"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 4


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
    #: The job's group for flow control: the name of an argument, or a callable given the
    #: task's arguments (``group_by(*args, **kwargs)``) returning a string or None.
    group_by: str | Callable[..., Any] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TaskDefaults:
        """The defaults ``@app.task(...)`` options describe (None means the default)."""
        values = {k: v for k, v in options.items() if not (k == "backoff" and v is None)}
        for field in ("retry_on", "permanent_on"):
            values[field] = _exception_classes(field, values.get(field))
        return cls(**values)

    def __post_init__(self) -> None:
        check_name("queue", self.queue)
        check_priority(self.priority)
        check_max_attempts(self.max_attempts)
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if not hasattr(self.backoff, "delay"):
            raise TypeError(f"backoff must be a policy from conveyor.backoff, got {self.backoff!r}")
        if not (self.group_by is None or isinstance(self.group_by, str) or callable(self.group_by)):
            raise TypeError(f"group_by takes an argument name or a callable, got {self.group_by!r}")

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry settings as the worker applies them."""
        return RetryPolicy(self.max_attempts, self.backoff, self.retry_on, self.permanent_on)


class Task(Generic[P, R]):
    """A registered task. Call it to run it inline; ``enqueue`` to run it on a worker."""

    def __init__(self, app: App, name: str, fn: Callable[P, R] | None, defaults: TaskDefaults) -> None:
        self.app = app
        self.name = check_name("task", name)
        self.fn = fn
        self.defaults = defaults
        self.retry_policy = defaults.retry_policy
        self.is_async = fn is not None and inspect.iscoroutinefunction(fn)
        #: The function's signature, bound once per call shape; None for a declared task.
        self.arguments = ArgumentCheck.of(self.name, fn)
        if fn is not None:
            self.__doc__ = fn.__doc__
            self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.defaults.queue}>"

    def group_of(self, args: Any, kwargs: Mapping[str, Any]) -> str | None:
        """The group ``group_by`` gives a run with these arguments (None: no group)."""
        group_by = self.defaults.group_by
        if group_by is None:
            return None
        if callable(group_by):
            value = group_by(*args, **kwargs)
        elif group_by in kwargs:
            value = kwargs[group_by]
        else:
            value = self._positional(group_by, args)
        return None if value is None else check_group(value if isinstance(value, str) else str(value))

    def _positional(self, name: str, args: Any) -> Any:
        """The value of parameter ``name`` among positional ``args`` (None when not given)."""
        if self.fn is None:
            raise TypeError(
                f"task {self.name!r} groups by {name!r}, which a declared task can only read from kwargs"
            )
        params = list(inspect.signature(self.fn).parameters)
        if name not in params:
            raise TypeError(f"task {self.name!r} groups by {name!r}, which is not one of its parameters")
        index = params.index(name)
        return args[index] if index < len(args) else None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no queue)."""
        if self.fn is None:
            raise TypeError(f"task {self.name!r} is declared here but its code lives elsewhere")
        return self.fn(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue a run with these arguments; returns the Job at once."""
        return self.app.enqueue(self.name, args, kwargs)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """``enqueue``, awaited without blocking the event loop."""
        return await self.app.aenqueue(self.name, args, kwargs)

    def options(self, **options: Any) -> BoundTask[P, R]:
        """Override enqueue options: queue, priority, delay, run_at, key, key_mode, ..., connection."""
        return BoundTask(self, {}).options(**options)


class BoundTask(Generic[P, R]):
    """A task with enqueue options applied: ``task.options(delay=60).enqueue(...)``."""

    def __init__(self, task: Task[P, R], options: Mapping[str, Any]) -> None:
        self.task = task
        self.bound: dict[str, Any] = dict(options)

    def options(self, **options: Any) -> BoundTask[P, R]:
        """Override more options (unknown names raise TypeError at once)."""
        check_option_names(k for k in options if k != "connection")
        return BoundTask(self.task, {**self.bound, **options})

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue with the bound options."""
        return self.task.app.enqueue(self.task.name, args, kwargs, **self.bound)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue with the bound options, awaited (``connection=`` an async connection)."""
        return await self.task.app.aenqueue(self.task.name, args, kwargs, **self.bound)
