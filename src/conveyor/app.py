"""The App: task registry, enqueue, and the admin operations, over one Backend."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar, overload

from . import alerts as alerting
from . import schedules as scheduling
from .actions import PYTHON, Actor, BulkDeleted, check_error_filter, filter_detail, new_action
from .backends import open_async_backend, open_backend
from .backends.aio import AsyncBackend
from .backends.base import (
    ActionRecord,
    AlertFiring,
    AlertSpec,
    Backend,
    ClaimedJob,
    FailureCount,
    JobQuery,
    NewAction,
    NewJob,
    Outcome,
    ScheduledJob,
    ScheduleFiring,
    ScheduleRecord,
    ScheduleSpec,
    decode_payload,
)
from .backends.flow import QueueUsage, check_group, queue_update
from .backends.throughput import Throughput
from .backoff import BackoffPolicy
from .builder import (
    build_jobs,
    check_name,
    check_option_names,
    check_seconds,
    encode_payload,
    parse_time,
    unknown_task,
)
from .config import Settings, load_settings
from .errors import AlertNotFound, DuplicateTask, InvalidSchedule, JobNotFound, ScheduleNotFound
from .job import Job, JobPage
from .states import PURGEABLE, RESUBMITTABLE, parse_state
from .task import DEFAULT_QUEUE, Task, TaskDefaults

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("conveyor")


@dataclass(frozen=True, slots=True)
class BuiltIn:
    """A feature shipped with Conveyor that plugs into every App (such as ``conveyor.webhooks``).

    ``install`` registers its tasks on each new App; ``follow_ups`` names the jobs to
    store together with an outcome (see :meth:`App.follow_ups`). The model never
    imports a feature: the feature hands itself to :meth:`App.add_built_in`.
    """

    name: str
    install: Callable[[App], object]
    follow_ups: Callable[[App, ClaimedJob, Outcome], Iterable[NewJob]] | None = None


class App:
    """A Conveyor application: its tasks and the backend they are stored in.

    ``url`` defaults to ``CONVEYOR_URL``, else ``sqlite:///conveyor.db``. Other
    keyword settings (``lease``, ``heartbeat``, ``grace``, ``concurrency``,
    ``max_payload_bytes``, ``key_retention``) are described in
    :class:`conveyor.config.Settings`. Workers are ``conveyor.Worker(app, ...)``.
    """

    #: The built-in features every App gets (their tasks, their follow-up jobs).
    built_ins: ClassVar[list[BuiltIn]] = []
    #: Builds ``asgi()``'s application; the package plugs the HTTP server in (the model never imports it).
    asgi_factory: ClassVar[Callable[..., Any] | None] = None

    def __init__(self, url: str | None = None, **settings: Any) -> None:
        self.settings: Settings = load_settings(url=url, **settings)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()
        #: One async side per event loop: async drivers' pools belong to the loop that opened them.
        self._async_backends: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncBackend] = (
            weakref.WeakKeyDictionary()
        )
        #: Who the action trail names for admin calls made without ``actor=`` (the CLI sets ``cli``).
        self.actor: Actor = PYTHON
        #: Schedules and alerts declared in this App's code, saved to the backend when a worker starts.
        self.declared_schedules: dict[str, ScheduleSpec] = {}
        self.declared_alerts: dict[str, AlertSpec] = {}
        for built_in in self.built_ins:
            built_in.install(self)

    @classmethod
    def add_built_in(cls, built_in: BuiltIn) -> None:
        """Plug a feature into every App created from now on (idempotent by name)."""
        cls.built_ins[:] = [b for b in cls.built_ins if b.name != built_in.name] + [built_in]

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

    def asgi(self, api_keys: Iterable[str] | None = None, *, api_key_file: str | None = None) -> Any:
        """The HTTP API and dashboard as one ASGI app, to mount in a Starlette or FastAPI app.

        ``fastapi_app.mount("/queue", app.asgi())``; keys as in ``conveyor serve``
        (``CONVEYOR_API_KEYS``, or ``api_keys``/``api_key_file``). Needs ``conveyor[server]``.
        """
        factory = type(self).asgi_factory
        if factory is None:
            raise RuntimeError("the HTTP server is not plugged in: import conveyor, not conveyor.app")
        return factory(self, api_keys, api_key_file=api_key_file)

    @property
    def async_backend(self) -> AsyncBackend:
        """The backend's async side for the running event loop, opened on first use there."""
        loop = asyncio.get_running_loop()
        found = self._async_backends.get(loop)
        if found is None:
            found = self._async_backends[loop] = open_async_backend(self.backend)
        return found

    async def aclose(self) -> None:
        """Close this loop's async connections, then the backend's (as ``close``)."""
        found = self._async_backends.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found.aclose()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Close the backend's connections (async sides of other loops are dropped)."""
        self._async_backends.clear()
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
        group_by: str | Callable[..., Any] | None = None,
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
        defaults = TaskDefaults.from_options(options)
        task: Task[Any, Any] = Task(self, name, fn, defaults)
        if existing is not None and fn is None:
            return existing  # a declaration never shadows the real function
        self.tasks[name] = task
        return task

    def get_task(self, name: str) -> Task[Any, Any]:
        """The registered task of that name, or UnknownTask naming the known ones."""
        task = self.tasks.get(name) if isinstance(name, str) else None
        if task is None:
            raise unknown_task(name, self.tasks)
        return task

    # -- enqueue ---------------------------------------------------------------
    def prepare(self, items: Iterable[Mapping[str, Any]]) -> list[NewJob]:
        """The jobs to store for enqueue items (the fields of ``POST /api/jobs``), all checked.

        Fields: ``task`` (required), ``args``, ``kwargs``, ``queue``, ``delay`` or ``run_at``
        (an ISO-8601 string, an aware datetime or POSIX seconds; no offset means UTC),
        ``priority``, ``key``, ``key_mode`` (keep|replace), ``max_attempts``, ``on_complete``.
        A field set to None takes the task's default. Raises UnknownTask, InvalidName,
        InvalidPayload (PayloadTooLarge) or ValueError/TypeError naming the bad value;
        every item is checked before any job is returned. Nothing is stored: pass the
        result to ``app.backend.enqueue_many``.
        """
        return build_jobs(items, self.tasks, self.settings.max_payload_bytes)

    def enqueue(
        self,
        task: str,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        connection: Any = None,
        **options: Any,
    ) -> Job:
        """Enqueue a task by name; options as in ``Task.options``. Unknown names raise UnknownTask.

        ``connection``: your open connection of the backend's driver (PostgreSQL): the job
        is written inside its current transaction.
        """
        check_option_names(options)
        item = {"task": task, "args": args, "kwargs": kwargs, **options}
        (job,) = self.enqueue_many((item,), connection=connection)
        return job

    def enqueue_many(self, items: Iterable[Mapping[str, Any]], *, connection: Any = None) -> list[Job]:
        """Enqueue many jobs in one round trip. Items have the fields of ``POST /api/jobs``.

        Every item is validated before anything is stored: one bad item stores none.
        """
        jobs = self.prepare(items)
        if not jobs:
            return []
        return [Job(self, r.id, r.state) for r in self.backend.enqueue_many(jobs, connection)]

    # -- built-in features ---------------------------------------------------------
    def follow_ups(self, job: ClaimedJob, outcome: Outcome) -> tuple[NewJob, ...]:
        """The jobs to store together with ``outcome`` (today: the ``on_complete`` callback).

        The worker asks this for every outcome and stores the answer in the same write
        (``Outcome.follow_ups``), so a crash can never keep one and lose the other.
        """
        found: list[NewJob] = []
        for built_in in self.built_ins:
            if built_in.follow_ups is not None:
                found.extend(built_in.follow_ups(self, job, outcome))
        return tuple(found)

    # -- admin -----------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """Everything stored about a job, with its attempts; JobNotFound if none."""
        record = self.backend.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return Job.loaded(self, record)

    def jobs(
        self,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
        offset: int = 0,
        created_after: datetime | float | str | None = None,
        created_before: datetime | float | str | None = None,
        error: str | None = None,
        group: str | None = None,
    ) -> JobPage:
        """A page of jobs, newest first: iterate it, ``len(page)``, ``page.items``, ``page.total``.

        ``error``: only jobs whose last error contains this text (plain, case-sensitive).
        """
        page = self.backend.list_jobs(
            self._query(status, queue, task, limit, offset, created_after, created_before, error, group)
        )
        return JobPage([Job.loaded(self, record) for record in page.items], page.total)

    def _query(
        self,
        status: str | None,
        queue: str | None,
        task: str | None,
        limit: int = 50,
        offset: int = 0,
        created_after: datetime | float | str | None = None,
        created_before: datetime | float | str | None = None,
        error: str | None = None,
        group: str | None = None,
    ) -> JobQuery:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 10_000:
            raise ValueError(f"limit must be an int from 0 to 10000, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        return JobQuery(
            status=None if status is None else parse_state(status),
            queue=None if queue is None else check_name("queue", queue),
            task=None if task is None else check_name("task", task),
            created_after=None if created_after is None else parse_time("created_after", created_after),
            created_before=None if created_before is None else parse_time("created_before", created_before),
            error=None if error is None else check_error_filter(error),
            group=None if group is None else check_group(group),
            limit=limit,
            offset=offset,
        )

    def stats(self) -> dict[str, Any]:
        """The dict of ``GET /api/queue/stats``."""
        return self.backend.stats().to_dict()

    # -- flow control ------------------------------------------------------------
    def configure_queue(self, queue: str, *, actor: Actor | None = None, **settings: Any) -> dict[str, Any]:
        """Set a queue's limits, stored in the backend and applied from the next claim.

        ``concurrency`` and ``group_concurrency`` are whole numbers >= 1; ``rate_limit``
        and ``group_rate_limit`` are ``"N/PERIOD"`` (``"100/m"``, ``"5/10s"``); None
        removes a limit; settings not named stay as they are. A bad value raises
        InvalidLimit naming it, and nothing changes. Returns the queue as in :meth:`queues`.
        The change is recorded in the action trail (``queue_update``, with the settings given).
        """
        return self._update_queue(queue, settings, "queue_update", actor)

    def pause_queue(self, queue: str, *, actor: Actor | None = None) -> dict[str, Any]:
        """Stop claims from ``queue`` (enqueue still works; running jobs finish)."""
        return self._update_queue(queue, {"paused": True}, "queue_pause", actor)

    def resume_queue(self, queue: str, *, actor: Actor | None = None) -> dict[str, Any]:
        """Let workers claim from ``queue`` again."""
        return self._update_queue(queue, {"paused": False}, "queue_resume", actor)

    def _update_queue(
        self, queue: str, settings: Mapping[str, Any], action: str, actor: Actor | None
    ) -> dict[str, Any]:
        name = check_name("queue", queue)
        self.backend.queue_update(queue_update(name, settings))
        detail: dict[str, Any] = {"queue": name}
        if action == "queue_update":
            detail["settings"] = dict(settings)
        # A queue setting names no job: recorded like a purge, with no job links and count 0.
        self._record(new_action(actor or self.actor, action, (), 0, **detail))
        return self.queue(name)

    def queue(self, queue: str) -> dict[str, Any]:
        """One queue as in :meth:`queues` (an unmanaged queue has no limits and is not paused)."""
        name = check_name("queue", queue)
        found = [q for q in self.queues() if q["name"] == name]
        if found:
            return found[0]
        return _queue_dict(QueueUsage(queue_update(name, {}).applied_to(None), 0, 0), self.stats(), name)

    def queues(self) -> list[dict[str, Any]]:
        """Every queue with jobs or settings: its limits, whether paused or throttled now, counts.

        Each item: ``name, paused, concurrency, rate_limit, group_concurrency,
        group_rate_limit, counts`` (the six states), and ``processing`` (against
        ``concurrency``), ``started_in_window`` (against ``rate_limit``), ``throttled``
        and ``busiest_groups``.
        """
        stats = self.stats()
        usage = {u.settings.name: u for u in self.backend.queue_usage()}
        names = sorted(set(stats["queues"]) | set(usage))
        return [
            _queue_dict(usage.get(n) or QueueUsage(queue_update(n, {}).applied_to(None), 0, 0), stats, n)
            for n in names
        ]

    def cancel(self, job_id: str, *, actor: Actor | None = None) -> Job:
        """Cancel a job: waiting jobs at once; running ones are asked to stop."""
        job = Job.loaded(self, self.backend.cancel(job_id))
        self._record(new_action(actor or self.actor, "cancel", (job_id,), 1))
        return job

    def _payload_override(self, job_id: str, args: Any, kwargs: Any) -> str | None:
        if args is None and kwargs is None:
            return None
        job = self.get(job_id)
        args = job.args if args is None else args
        kwargs = job.kwargs if kwargs is None else kwargs
        payload = encode_payload(job.task, args, kwargs, self.settings.max_payload_bytes)
        self._check_arguments(job.task, args, kwargs)
        return payload

    def _check_arguments(self, task_name: str | None, args: Any, kwargs: Any) -> None:
        """InvalidArguments if edited arguments do not fit a task whose code this App has."""
        task = self.tasks.get(task_name) if task_name is not None else None
        if task is not None and task.arguments is not None:
            task.arguments.check(args, kwargs)

    def resubmit(
        self, job_id: str, *, args: Any = None, kwargs: Any = None, actor: Actor | None = None
    ) -> Job:
        """A failed (or cancelled) job back to pending with a fresh attempt budget.

        With edited ``args``/``kwargs``, the action trail keeps the arguments it had before.
        """
        before = None if args is None and kwargs is None else self.get(job_id)
        job = Job.loaded(self, self.backend.resubmit(job_id, self._payload_override(job_id, args, kwargs)))
        detail = (
            {}
            if before is None
            else {"edited": True, "previous": {"args": before.args, "kwargs": before.kwargs}}
        )
        self._record(new_action(actor or self.actor, "resubmit", (job_id,), 1, **detail))
        return job

    def resubmit_many(
        self,
        status: str = "failed",
        queue: str | None = None,
        task: str | None = None,
        *,
        args: Any = None,
        kwargs: Any = None,
        error: str | None = None,
        created_after: datetime | float | str | None = None,
        created_before: datetime | float | str | None = None,
        dry_run: bool = False,
        actor: Actor | None = None,
    ) -> int:
        """Resubmit every job in the failure table (or ``cancelled``) matching the filters; how many.

        ``dry_run``: count them and change nothing.
        """
        parse_state(status, RESUBMITTABLE)
        query = self._query(status, queue, task, 0, 0, created_after, created_before, error)
        if dry_run:
            return self.backend.list_jobs(query).total
        payload = None
        if args is not None or kwargs is not None:
            limit = self.settings.max_payload_bytes
            payload = encode_payload(task or "resubmit", args or [], kwargs or {}, limit)
            self._check_arguments(task, args or [], kwargs or {})
        ids = self.backend.resubmit_many(query, payload)
        if ids:
            detail = filter_detail(query) | ({"edited": True} if payload is not None else {})
            self._record(new_action(actor or self.actor, "resubmit_many", ids, len(ids), filter=detail))
        return len(ids)

    def delete(self, job_id: str, *, actor: Actor | None = None) -> None:
        """Delete a job that is not running, with its audit records."""
        self.backend.delete(job_id)
        self._record(new_action(actor or self.actor, "delete", (job_id,), 1))

    def delete_many(
        self,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        *,
        error: str | None = None,
        created_after: datetime | float | str | None = None,
        created_before: datetime | float | str | None = None,
        dry_run: bool = False,
        actor: Actor | None = None,
    ) -> BulkDeleted:
        """Delete every job matching the filters, with their audit records; running jobs are skipped.

        At least one filter is needed (``purge`` clears finished jobs by age). ``dry_run``:
        count what would be deleted and skipped, and change nothing.
        """
        query = self._query(status, queue, task, 0, 0, created_after, created_before, error)
        if not filter_detail(query):
            raise ValueError(
                "delete_many needs at least one filter (status, queue, task, error, created_after "
                "or created_before); purge deletes finished jobs by age"
            )
        if dry_run:
            matched = self.backend.list_jobs(query).total
            skipped = 0
            if query.status in (None, "processing"):
                skipped = self.backend.list_jobs(replace(query, status="processing")).total
            return BulkDeleted(matched - skipped, skipped)
        done = self.backend.delete_many(query)
        if done.deleted:
            detail = filter_detail(query)
            self._record(
                new_action(actor or self.actor, "delete_many", done.deleted, len(done.deleted), filter=detail)
            )
        return BulkDeleted(len(done.deleted), done.skipped)

    def purge(
        self,
        status: str | Iterable[str] = "completed",
        older_than: timedelta | float = 0.0,
        *,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
        actor: Actor | None = None,
    ) -> int:
        """Delete finished jobs in ``status`` that finished more than ``older_than`` ago, in batches."""
        statuses = [status] if isinstance(status, str) else list(status)
        states = [parse_state(s, PURGEABLE) for s in statuses]
        age = check_seconds("older_than", older_than, maximum=float("inf"))
        before = self.backend.now() - age
        total = 0
        while True:
            n = self.backend.purge(states, before, batch_size)
            total += n
            if progress is not None:
                progress(total)
            if n < batch_size:
                break
        if total:
            detail = {"status": states, "older_than_s": age}
            self._record(new_action(actor or self.actor, "purge", (), total, **detail))
        return total

    def record_action(self, action: NewAction) -> None:
        """Add an action to the trail (for admin writes made outside the App's own methods)."""
        self._record(action)

    def _record(self, action: NewAction) -> None:
        # The action is done: a trail that cannot be written must not turn it into an error
        # the caller would retry; it is logged instead.
        try:
            self.backend.record_actions([action])
        except Exception:
            log.exception(
                "could not record the %s action of %s in the action trail", action.action, action.actor
            )

    def actions(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[ActionRecord]:
        """The action trail, newest first: who retried, cancelled or deleted what, and when."""
        return self.backend.list_actions(job_id, limit, offset)

    def audits(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[Any]:
        """Attempt records, newest first."""
        return self.backend.audits(job_id, limit, offset)

    def workers(self) -> list[dict[str, Any]]:
        """The live workers (the JSON of ``GET /api/workers``), the longest-running first.

        Each: ``id, host, pid, queues, concurrency, running`` (job ids), ``started_at,
        last_seen_at, version``. A worker drops off after three missed heartbeats, or at
        once when it stops cleanly.
        """
        return [record.to_dict() for record in self.backend.workers_live()]

    def throughput(self, minutes: int = 60, queue: str | None = None) -> Throughput:
        """Jobs completed and failed in each of the last ``minutes`` minutes (1 to 1440), one queue or all.

        On the backend's clock, oldest minute first, every minute present; ``failed``
        counts jobs that failed for good, not retried attempts. ``to_dict()`` is the JSON
        of ``GET /api/throughput``. A bad window raises InvalidWindow.
        """
        return self.backend.throughput(minutes, None if queue is None else check_name("queue", queue))

    # -- async producers (same builder, same checks; the backend's async side) ----------
    async def aenqueue(
        self,
        task: str,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        connection: Any = None,
        **options: Any,
    ) -> Job:
        """``enqueue``, awaited without blocking the event loop.

        ``connection``: a ``psycopg.AsyncConnection`` (PostgreSQL) whose open transaction
        the job joins.
        """
        check_option_names(options)
        item = {"task": task, "args": args, "kwargs": kwargs, **options}
        (job,) = await self.aenqueue_many((item,), connection=connection)
        return job

    async def aenqueue_many(self, items: Iterable[Mapping[str, Any]], *, connection: Any = None) -> list[Job]:
        """``enqueue_many``, awaited: every item checked first, then one round trip."""
        jobs = self.prepare(items)
        if not jobs:
            return []
        stored = await self.async_backend.enqueue_many(jobs, connection)
        return [Job(self, r.id, r.state) for r in stored]

    async def aget(self, job_id: str) -> Job:
        """``get``, awaited."""
        record = await self.async_backend.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return Job.loaded(self, record)

    async def ajobs(
        self,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
        offset: int = 0,
        created_after: datetime | float | str | None = None,
        created_before: datetime | float | str | None = None,
        error: str | None = None,
        group: str | None = None,
    ) -> JobPage:
        """``jobs``, awaited."""
        query = self._query(status, queue, task, limit, offset, created_after, created_before, error, group)
        page = await self.async_backend.list_jobs(query)
        return JobPage([Job.loaded(self, record) for record in page.items], page.total)

    async def astats(self) -> dict[str, Any]:
        """``stats``, awaited."""
        return (await self.async_backend.stats()).to_dict()

    async def acancel(self, job_id: str, *, actor: Actor | None = None) -> Job:
        """``cancel``, awaited."""
        job = Job.loaded(self, await self.async_backend.cancel(job_id))
        await asyncio.to_thread(self._record, new_action(actor or self.actor, "cancel", (job_id,), 1))
        return job

    async def aresubmit(
        self, job_id: str, *, args: Any = None, kwargs: Any = None, actor: Actor | None = None
    ) -> Job:
        """``resubmit``, awaited (edited arguments are checked and recorded as in ``resubmit``)."""
        payload = None
        detail: dict[str, Any] = {}
        if args is not None or kwargs is not None:
            job = await self.aget(job_id)
            payload = encode_payload(
                job.task,
                job.args if args is None else args,
                job.kwargs if kwargs is None else kwargs,
                self.settings.max_payload_bytes,
            )
            detail = {"edited": True, "previous": {"args": job.args, "kwargs": job.kwargs}}
        resubmitted = Job.loaded(self, await self.async_backend.resubmit(job_id, payload))
        action = new_action(actor or self.actor, "resubmit", (job_id,), 1, **detail)
        await asyncio.to_thread(self._record, action)
        return resubmitted

    async def adelete(self, job_id: str, *, actor: Actor | None = None) -> None:
        """``delete``, awaited."""
        await self.async_backend.delete(job_id)
        await asyncio.to_thread(self._record, new_action(actor or self.actor, "delete", (job_id,), 1))

    # -- schedules -------------------------------------------------------------------------
    def periodic(
        self,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str = scheduling.DEFAULT_TZ,
        name: str | None = None,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        missed: str = "latest",
        **task_options: Any,
    ) -> Callable[[F], Task[Any, Any]]:
        """Register a task and its schedule (named after the task): ``@app.periodic(cron="0 * * * *")``.

        ``task_options`` are those of ``@app.task``. The schedule is saved to the backend
        when a worker starts (``conveyor worker --no-schedules`` leaves it alone).
        """
        timing = scheduling.Timing.checked(cron, every, tz)

        def register(func: F) -> Task[Any, Any]:
            task = self.task(name=name, **task_options)(func)
            spec = self._schedule_spec(task.name, task.name, timing, args, kwargs, None, missed)
            self.prepare_scheduled(spec)
            self.declared_schedules[spec.name] = spec
            return task

        return register

    def schedule(
        self,
        name: str,
        *,
        task: str,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str = scheduling.DEFAULT_TZ,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        missed: str = "latest",
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        """Create or update a schedule: ``task`` runs at each tick of ``cron`` (in ``tz``) or ``every`` s.

        Saved to the backend at once and kept until ``unschedule``; a worker started from
        this App saves it again (a changed timing starts over from its next tick). A bad
        cron expression, unknown zone or unknown task raises before anything is stored.
        Returns the schedule as ``app.schedules()`` shows it. A new or changed schedule is
        recorded in the action trail (``schedule_save``); saving it unchanged is not.
        """
        timing = scheduling.Timing.checked(cron, every, tz)
        self.get_task(task)
        spec = self._schedule_spec(name, task, timing, args, kwargs, queue, missed)
        self.prepare_scheduled(spec)  # the arguments bind to the task: checked now, not at each tick
        self.declared_schedules[spec.name] = spec
        before = self._schedule_record(spec.name)
        self.backend.schedule_save([spec])
        if before is None or replace(before.spec, next_run_at=spec.next_run_at) != spec:
            detail: dict[str, Any] = {"schedule": spec.name, "task": spec.task, "tz": spec.tz}
            detail["queue"] = spec.queue
            detail.update({"cron": spec.cron} if spec.cron is not None else {"every": spec.every})
            self._record(new_action(actor or self.actor, "schedule_save", (), 0, **detail))
        return self._schedule(spec.name)

    def _schedule_spec(
        self,
        name: str,
        task: str,
        timing: scheduling.Timing,
        args: Any,
        kwargs: Any,
        queue: str | None,
        missed: str,
    ) -> ScheduleSpec:
        try:
            check_name("schedule", name)
            check_name("task", task)
            if queue is not None:
                check_name("queue", queue)
        except ValueError as exc:
            raise InvalidSchedule(str(exc)) from None
        payload = encode_payload(task, args or (), kwargs or {}, self.settings.max_payload_bytes)
        return ScheduleSpec(
            name=name,
            task=task,
            cron=timing.cron,
            every=timing.every,
            tz=timing.tz,
            payload=payload,
            queue=queue,
            missed=scheduling.check_missed(missed),
            next_run_at=timing.next_tick(time.time()),
        )

    def save_schedules(self) -> int:
        """Write the schedules declared in this App's code to the backend (a worker's scheduler does)."""
        if self.declared_schedules:
            self.backend.schedule_save(list(self.declared_schedules.values()))
        return len(self.declared_schedules)

    def unschedule(self, name: str, *, actor: Actor | None = None) -> None:
        """Delete a schedule (jobs it already enqueued stay); ScheduleNotFound if there is none."""
        self.declared_schedules.pop(name, None)
        if not self.backend.schedule_delete([name]):
            raise ScheduleNotFound(f"no schedule named {name!r}")
        self._record(new_action(actor or self.actor, "schedule_delete", (), 0, schedule=name))

    def schedules(self) -> list[dict[str, Any]]:
        """Every stored schedule: name, task, cron or every, tz, args, kwargs, queue, paused,
        next_run_at, last_run_at, last_job_id."""
        return [scheduling.describe(record) for record in self.backend.schedule_list()]

    def _schedule_record(self, name: str) -> ScheduleRecord | None:
        return next((r for r in self.backend.schedule_list() if r.spec.name == name), None)

    def _schedule(self, name: str) -> dict[str, Any]:
        record = self._schedule_record(name)
        if record is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return scheduling.describe(record)

    def pause_schedule(self, name: str, *, actor: Actor | None = None) -> dict[str, Any]:
        """Stop a schedule's ticks until resumed (runtime state: a deploy does not undo it)."""
        if not self.backend.schedule_pause([name], True):
            raise ScheduleNotFound(f"no schedule named {name!r}")
        self._record(new_action(actor or self.actor, "schedule_pause", (), 0, schedule=name))
        return self._schedule(name)

    def resume_schedule(self, name: str, *, actor: Actor | None = None) -> dict[str, Any]:
        """Resume a paused schedule from its next tick (the ticks it was paused for do not run)."""
        record = self._schedule_record(name)
        if record is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        timing = scheduling.Timing(record.spec.cron, record.spec.every, record.spec.tz)
        self.backend.schedule_pause([name], False, timing.next_tick(self.backend.now()))
        self._record(new_action(actor or self.actor, "schedule_resume", (), 0, schedule=name))
        return self._schedule(name)

    def run_schedule(self, name: str, *, actor: Actor | None = None) -> Job:
        """Enqueue the schedule's job now, once, besides its ticks (its next tick is unchanged)."""
        record = self._schedule_record(name)
        if record is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        job = self.prepare_scheduled(record.spec)
        firing = ScheduleFiring(name, None, (ScheduledJob(self.backend.now(), job),))
        if not self.backend.schedule_fire([firing])[0]:
            raise ScheduleNotFound(f"schedule {name!r} was deleted while being run")
        self._record(new_action(actor or self.actor, "schedule_run", (job.id,), 1, schedule=name))
        return Job(self, job.id, "pending")

    def prepare_scheduled(self, spec: ScheduleSpec) -> NewJob:
        """The job one tick of ``spec`` stores (UnknownTask if this App lacks its task)."""
        args, kwargs = decode_payload(spec.payload)
        (job,) = self.prepare([{"task": spec.task, "args": args, "kwargs": kwargs, "queue": spec.queue}])
        # A tick belongs to no caller's trace (the scheduler's thread may run inside some span).
        return job._replace(trace_context=None)

    # -- failure alerts --------------------------------------------------------------------
    def alert(
        self,
        name: str,
        *,
        url: str,
        threshold: int,
        window: str | float | timedelta,
        queue: str | None = None,
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        """POST to ``url`` (a signed ``conveyor.http`` job) when ``threshold`` jobs enter ``failed``
        within ``window`` (``"5m"``, seconds or a timedelta), at most once per window; ``queue``
        limits it to one queue. Saved at once (and again when a worker of this App starts).
        A new or changed alert is recorded in the action trail (``alert_save``, without its
        URL, which may carry a token)."""
        spec = alerting.check_alert(name, url, threshold, window, queue)
        self.declared_alerts[spec.name] = spec
        before = next((r.spec for r in self.backend.alert_list() if r.spec.name == spec.name), None)
        self.backend.alert_save([spec])
        if before != spec:
            detail = {
                "alert": spec.name,
                "threshold": spec.threshold,
                "window": spec.window,
                "queue": spec.queue,
            }
            self._record(new_action(actor or self.actor, "alert_save", (), 0, **detail))
        return next(alerting.describe(r) for r in self.backend.alert_list() if r.spec.name == spec.name)

    def save_alerts(self) -> int:
        """Write the alerts declared in this App's code to the backend (a worker's alerter does)."""
        if self.declared_alerts:
            self.backend.alert_save(list(self.declared_alerts.values()))
        return len(self.declared_alerts)

    def remove_alert(self, name: str, *, actor: Actor | None = None) -> None:
        """Delete an alert; AlertNotFound if there is none."""
        self.declared_alerts.pop(name, None)
        if not self.backend.alert_delete([name]):
            raise AlertNotFound(f"no alert named {name!r}")
        self._record(new_action(actor or self.actor, "alert_delete", (), 0, alert=name))

    def alerts(self) -> list[dict[str, Any]]:
        """Every stored alert: name, url, threshold, window, queue, last_fired_at."""
        return [alerting.describe(record) for record in self.backend.alert_list()]

    def prepare_alert(self, spec: AlertSpec, failures: FailureCount, fired_at: float) -> AlertFiring:
        """The firing that stores ``spec``'s notification (a ``conveyor.http`` POST) and stamps it."""
        body = alerting.notification(spec, failures)
        (job,) = self.prepare([{"task": "conveyor.http", "kwargs": {"url": spec.url, "json": body}}])
        # Like a schedule tick, the notification belongs to no caller's trace.
        return AlertFiring(spec.name, fired_at, fired_at - spec.window, job._replace(trace_context=None))


def _queue_dict(usage: QueueUsage, stats: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The JSON shape of one queue in ``app.queues()`` and ``GET /api/queues``."""
    counts = stats["queues"].get(name) or dict.fromkeys(stats["counts"], 0)
    return {
        **usage.settings.to_dict(),
        "counts": dict(counts),
        "processing": counts.get("processing", usage.processing),
        "started_in_window": usage.started_in_window,
        "throttled": usage.throttled,
        "busiest_groups": [g.to_dict() for g in usage.busiest_groups],
    }
