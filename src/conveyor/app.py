"""The App: task registry, enqueue, and the admin operations, over one Backend."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import urlsplit

from .backends import open_backend
from .backends.base import Backend, ClaimedJob, JobQuery, JobRecord, NewJob, Outcome, Page
from .backoff import BackoffPolicy
from .config import Settings, load_settings
from .errors import DuplicateTask, InvalidPayload, JobNotFound, PayloadTooLarge, UnknownTask
from .http_task import completion_callback, register_builtin_tasks
from .ids import new_job_id, new_job_ids
from .job import Job
from .states import PURGEABLE, RESUBMITTABLE, parse_state
from .task import DEFAULT_QUEUE, EnqueueOptions, Task, TaskDefaults, _exception_classes, check_name

if TYPE_CHECKING:
    from .worker import Worker

F = TypeVar("F", bound=Callable[..., Any])

#: Fields an ``enqueue_many`` item (and ``POST /api/jobs``) may carry.
ITEM_FIELDS = frozenset(
    {
        "task",
        "args",
        "kwargs",
        "queue",
        "delay",
        "run_at",
        "priority",
        "key",
        "key_mode",
        "max_attempts",
        "on_complete",
    }
)


_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_EMPTY_PAYLOAD = '{"args":[],"kwargs":{}}'
_NO_OPTIONS = EnqueueOptions()
_PAYLOAD_FIELDS = frozenset({"task", "args", "kwargs"})


def _seconds(name: str, value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be seconds or a timedelta, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def _timestamp(value: datetime | float | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"run_at {value!r} is not an ISO-8601 time") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"run_at {value!r} has no time zone; pass an aware datetime (UTC)")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"run_at must be a datetime or POSIX seconds, got {value!r}")
    return float(value)


def check_url(url: object, name: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL, else raise ValueError naming it."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an absolute http:// or https:// URL, got {url!r}")
    return url  # type: ignore[return-value]


class App:
    """A Conveyor application: its tasks and the backend they are stored in.

    ``url`` defaults to ``CONVEYOR_URL``, else ``sqlite:///conveyor.db``. Other
    keyword settings (``lease``, ``heartbeat``, ``grace``, ``concurrency``,
    ``max_payload_bytes``, ``key_retention``) are described in
    :class:`conveyor.config.Settings`.
    """

    def __init__(self, url: str | None = None, **settings: Any) -> None:
        self.settings: Settings = load_settings(url=url, **settings)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()
        register_builtin_tasks(self)

    def __repr__(self) -> str:
        return f"<conveyor.App {self.url} tasks={len(self.tasks)}>"

    @property
    def url(self) -> str:
        """The backend URL."""
        return self.settings.url

    @property
    def backend(self) -> Backend:
        """The storage backend, opened on first use."""
        if self._backend is None:
            with self._backend_lock:
                if self._backend is None:
                    self._backend = open_backend(self.url, key_retention=self.settings.key_retention)
        return self._backend

    def close(self) -> None:
        """Close the backend's connections."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # -- registry ------------------------------------------------------------
    @overload
    def task(self, fn: F, /) -> Task[Any, Any]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        max_attempts: int = 4,
        timeout: float | None = None,
        backoff: BackoffPolicy | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        permanent_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> Callable[[F], Task[Any, Any]]: ...

    def task(self, fn: Any = None, /, *, name: str | None = None, **options: Any) -> Any:
        """Register a function (sync or async) as a task: ``@app.task(queue=..., ...)``."""

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            return self._register(name or func.__name__, func, options)

        return register(fn) if fn is not None else register

    def declare(self, name: str, **options: Any) -> Task[Any, Any]:
        """Declare a task whose code lives elsewhere, so this process can enqueue it."""
        return self._register(name, None, options)

    def _register(self, name: str, fn: Callable[..., Any] | None, options: dict[str, Any]) -> Task[Any, Any]:
        check_name("task", name)
        existing = self.tasks.get(name)
        if existing is not None and not (existing.fn is None or fn is None):
            raise DuplicateTask(f"two tasks are named {name!r} in this App; give one a name=...")
        if "backoff" in options and options["backoff"] is None:
            del options["backoff"]
        for field in ("retry_on", "permanent_on"):
            options[field] = _exception_classes(field, options.get(field))
        defaults = TaskDefaults(**options)
        task: Task[Any, Any] = Task(self, name, fn, defaults)
        if existing is not None and fn is None:
            return existing  # a declaration never shadows the real function
        self.tasks[name] = task
        return task

    def get_task(self, name: str) -> Task[Any, Any]:
        """The registered task of that name, or UnknownTask naming the known ones."""
        task = self.tasks.get(name) if isinstance(name, str) else None
        if task is None:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTask(f"unknown task {name!r} (registered: {known})")
        return task

    # -- enqueue ---------------------------------------------------------------
    def _encode(self, task: str, args: Any, kwargs: Any) -> str:
        if not isinstance(args, (list, tuple)):
            raise InvalidPayload(f"args of {task} must be a list, got {type(args).__name__}")
        if not isinstance(kwargs, Mapping):
            raise InvalidPayload(f"kwargs of {task} must be an object, got {type(kwargs).__name__}")
        try:
            text = (
                _EMPTY_PAYLOAD
                if not args and not kwargs
                else _JSON.encode({"args": list(args), "kwargs": dict(kwargs)})
            )
        except (TypeError, ValueError) as exc:
            raise InvalidPayload(
                f"arguments of {task} are not JSON-serialisable: {exc}; pass plain data "
                "(str, int, float, bool, None, list, dict) such as ids instead of objects"
            ) from None
        limit = self.settings.max_payload_bytes
        if len(text) * 4 > limit and len(size := text.encode()) > limit:
            raise PayloadTooLarge(
                f"payload of {task} is {len(size):,} bytes, over the limit of {limit:,} bytes"
            )
        return text

    def _new_job(
        self, task: Task[Any, Any], args: Any, kwargs: Any, opts: EnqueueOptions, job_id: str | None = None
    ) -> NewJob:
        d = task.defaults
        if opts is _NO_OPTIONS:  # the bulk fast path: the task's validated defaults
            payload = self._encode(task.name, args, kwargs)
            return NewJob(job_id or new_job_id(), task.name, d.queue, payload, d.max_attempts, d.priority)
        queue = check_name("queue", opts.queue) if opts.queue is not None else d.queue
        priority = d.priority if opts.priority is None else opts.priority
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, got {priority!r}")
        max_attempts = d.max_attempts if opts.max_attempts is None else opts.max_attempts
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        if opts.key is not None and (not isinstance(opts.key, str) or not 0 < len(opts.key) <= 512):
            raise ValueError(f"key must be a non-empty string of at most 512 characters, got {opts.key!r}")
        if opts.key_mode not in ("keep", "replace"):
            raise ValueError(f"key_mode must be 'keep' or 'replace', got {opts.key_mode!r}")
        if opts.on_complete is not None:
            check_url(opts.on_complete, "on_complete")
        return NewJob(
            id=job_id or new_job_id(),
            task=task.name,
            queue=queue,
            payload=self._encode(task.name, args, kwargs),
            max_attempts=max_attempts,
            priority=priority,
            run_at=_timestamp(opts.run_at),
            delay=_seconds("delay", opts.delay) or 0.0,
            key=opts.key,
            key_mode=opts.key_mode,
            on_complete=opts.on_complete,
        )

    def _enqueue_task(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], opts: EnqueueOptions
    ) -> Job:
        (result,) = self.backend.enqueue_many([self._new_job(task, args, kwargs, opts)], opts.connection)
        return Job(self, result.id, result.state)

    def enqueue(
        self,
        task: str,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue a task by name; options as in ``Task.options``. Unknown names raise UnknownTask."""
        return self._enqueue_task(
            self.get_task(task), list(args or []), dict(kwargs or {}), EnqueueOptions(**options)
        )

    def enqueue_many(self, items: Iterable[Mapping[str, Any]], *, connection: Any = None) -> list[Job]:
        """Enqueue many jobs in one round trip. Items have the fields of ``POST /api/jobs``.

        Every item is validated before anything is stored: one bad item stores none.
        """
        items = list(items)
        if not items:
            return []
        ids = new_job_ids(len(items))
        jobs: list[NewJob] = []
        tasks = self.tasks
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise InvalidPayload(f"item {index} is not an object: {item!r}")
            if item.keys() <= _PAYLOAD_FIELDS:
                opts = _NO_OPTIONS
            else:
                unknown = set(item) - ITEM_FIELDS
                if unknown:
                    raise InvalidPayload(f"item {index} has unknown field(s) {sorted(unknown)}")
                opts = EnqueueOptions(**{k: v for k, v in item.items() if k not in _PAYLOAD_FIELDS})
            if "task" not in item:
                raise InvalidPayload(f"item {index} has no 'task'")
            name = item["task"]
            task = tasks.get(name) if isinstance(name, str) else None
            if task is None:
                task = self.get_task(name)  # raises UnknownTask naming the known ones
            jobs.append(
                self._new_job(task, item.get("args") or (), item.get("kwargs") or {}, opts, ids[index])
            )
        return [Job(self, r.id, r.state) for r in self.backend.enqueue_many(jobs, connection)]

    # -- admin -----------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord:
        """Everything stored about a job, with its attempts; JobNotFound if none."""
        record = self.backend.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return record

    def job(self, job_id: str) -> Job:
        """A Job handle for an id."""
        record = self.get(job_id)
        return Job(self, record.id, record.state, record)

    def jobs(
        self,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
        offset: int = 0,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None,
    ) -> Page:
        """A page of jobs, newest first; ``page.items`` and ``page.total``."""
        return self.backend.list_jobs(
            self._query(status, queue, task, limit, offset, created_after, created_before)
        )

    def _query(
        self,
        status: str | None,
        queue: str | None,
        task: str | None,
        limit: int = 50,
        offset: int = 0,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None,
    ) -> JobQuery:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 10_000:
            raise ValueError(f"limit must be an int from 0 to 10000, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        return JobQuery(
            status=None if status is None else parse_state(status),
            queue=None if queue is None else check_name("queue", queue),
            task=None if task is None else check_name("task", task),
            created_after=_timestamp(created_after),
            created_before=_timestamp(created_before),
            limit=limit,
            offset=offset,
        )

    def stats(self) -> dict[str, Any]:
        """The dict of ``GET /api/queue/stats``."""
        return self.backend.stats().to_dict()

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: waiting jobs at once; running ones are asked to stop."""
        record = self.backend.cancel(job_id)
        return Job(self, record.id, record.state, record)

    def _payload_override(self, job_id: str, args: Any, kwargs: Any) -> str | None:
        if args is None and kwargs is None:
            return None
        record = self.get(job_id)
        return self._encode(
            record.task,
            record.args if args is None else args,
            record.kwargs if kwargs is None else kwargs,
        )

    def resubmit(self, job_id: str, *, args: Any = None, kwargs: Any = None) -> Job:
        """A failed (or cancelled) job back to pending with a fresh attempt budget."""
        record = self.backend.resubmit(job_id, self._payload_override(job_id, args, kwargs))
        return Job(self, record.id, record.state, record)

    def resubmit_many(
        self,
        status: str = "failed",
        queue: str | None = None,
        task: str | None = None,
        *,
        args: Any = None,
        kwargs: Any = None,
    ) -> int:
        """Resubmit every job in the failure table (or ``cancelled``) matching the filters."""
        parse_state(status, RESUBMITTABLE)
        payload = None
        if args is not None or kwargs is not None:
            payload = self._encode(task or "resubmit", args or [], kwargs or {})
        return self.backend.resubmit_many(self._query(status, queue, task), payload)

    def delete(self, job_id: str) -> None:
        """Delete a job that is not running, with its audit records."""
        self.backend.delete(job_id)

    def purge(
        self,
        status: str | Iterable[str] = "completed",
        older_than: timedelta | float = 0.0,
        *,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished jobs in ``status`` that finished more than ``older_than`` ago, in batches."""
        statuses = [status] if isinstance(status, str) else list(status)
        states = [parse_state(s, PURGEABLE) for s in statuses]
        age = _seconds("older_than", older_than) or 0.0
        before = self.backend.now() - age
        total = 0
        while True:
            n = self.backend.purge(states, before, batch_size)
            total += n
            if progress is not None:
                progress(total)
            if n < batch_size:
                return total

    def audits(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[Any]:
        """Attempt records, newest first."""
        return self.backend.audits(job_id, limit, offset)

    # -- workers -----------------------------------------------------------------
    def follow_ups(self, job: ClaimedJob, outcome: Outcome) -> tuple[NewJob, ...]:
        """The jobs to store together with ``outcome``: today its ``on_complete`` callback."""
        if not job.on_complete:
            return ()
        callback = completion_callback(self, job, outcome)
        return () if callback is None else (callback,)

    def worker(
        self,
        queues: Iterable[str] | None = None,
        concurrency: int | None = None,
        **options: Any,
    ) -> Worker:
        """A Worker for this app (``worker.run()`` blocks; ``worker.process_batch(n)`` runs one batch)."""
        from .worker import Worker

        return Worker(self, queues=queues, concurrency=concurrency, **options)
