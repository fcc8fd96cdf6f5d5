"""A Django 6 Tasks backend: Django's ``@task`` functions enqueued through Conveyor.

Settings::

    TASKS = {"default": {"BACKEND": "conveyor.contrib.django.ConveyorBackend",
                         "QUEUES": ["default", "emails"],
                         "OPTIONS": {"url": "postgresql://localhost/app"}}}

Workers run ``DJANGO_SETTINGS_MODULE=mysite.settings conveyor worker
conveyor.contrib.django:app`` (``--queues`` for queues other than ``default``). The
module's ``app`` sets Django up and is the Conveyor App of the ``default`` alias
(``CONVEYOR_DJANGO_BACKEND`` names another). A Django task's Conveyor name is its
``module_path``; a worker imports it on first sight of a job. Results map to Django's
``TaskResult``: pending and retry are READY, processing RUNNING, completed SUCCESSFUL,
failed and cancelled FAILED, one ``TaskError`` per failed attempt.

OPTIONS: ``url`` (default ``CONVEYOR_URL``, else SQLite), ``max_attempts`` (default 1:
a Django task runs once, as Django's model has it; raise it for Conveyor's retries with
backoff) and any App setting (``lease``, ``max_payload_bytes``...). Enqueue writes at
once, as Django documents for its backends: wrap it in ``transaction.on_commit`` to
enqueue only when the surrounding transaction commits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.tasks import task_backends
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task as DjangoTask
from django.tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from .. import App, Job, current_job
from ..errors import JobNotFound
from ..task import Task, TaskDefaults

#: Conveyor states as Django's TaskResultStatus.
STATUS = {
    "pending": TaskResultStatus.READY,
    "retry": TaskResultStatus.READY,
    "processing": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}
#: The environment variable naming the TASKS alias ``conveyor.contrib.django:app`` serves.
ALIAS_VARIABLE = "CONVEYOR_DJANGO_BACKEND"


class DjangoTaskTable(dict[str, Task[Any, Any]]):
    """An App's task table that finds a Django task by its module path the first time a job names it."""

    def __init__(self, backend: ConveyorBackend) -> None:
        super().__init__()
        self.backend = backend

    def get(self, name: str, default: Any = None) -> Any:
        """The registered task, else the Django task importable at ``name`` (registered now)."""
        found = super().get(name)
        if found is None and "." in name:
            try:
                target = import_string(name)
            except ImportError:
                return default
            if isinstance(target, DjangoTask):
                return self.backend.register(target)
        return default if found is None else found


class ConveyorBackend(BaseTaskBackend):
    """Django's task backend API on a Conveyor App (see the module docstring)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        settings = dict(self.options)
        url = settings.pop("url", None)
        self.max_attempts = int(settings.pop("max_attempts", 1))
        self.app = App(url, **settings)
        table = DjangoTaskTable(self)
        table.update(self.app.tasks)  # the built-in tasks (conveyor.http) stay
        self.app.tasks = table

    def register(self, task: DjangoTask) -> Task[Any, Any]:
        """The Conveyor task running ``task`` (registered on first use, by module path)."""
        name = task.module_path
        found = dict.get(self.app.tasks, name)
        if found is None:
            # Straight into the table: App.task would ask the table's get, which lands here.
            defaults = TaskDefaults(queue=task.queue_name, max_attempts=self.max_attempts)
            found = Task(self.app, name, _runner(task, self.alias), defaults)
            dict.__setitem__(self.app.tasks, name, found)
        return found

    def _item(self, task: DjangoTask, args: Any, kwargs: Any) -> dict[str, Any]:
        self.validate_task(task)
        self.register(task)
        item: dict[str, Any] = {
            "task": task.module_path,
            "args": list(args),
            "kwargs": dict(kwargs),
            "queue": task.queue_name,
            "priority": task.priority,
        }
        if task.run_after is not None:
            item["run_at"] = task.run_after
        return item

    def enqueue(self, task: DjangoTask, args: Any, kwargs: Any) -> TaskResult:
        """Store a job for ``task`` now; the result is READY."""
        (job,) = self.app.enqueue_many([self._item(task, args, kwargs)])
        return self._enqueued(task, job, args, kwargs)

    async def aenqueue(self, task: DjangoTask, args: Any, kwargs: Any) -> TaskResult:
        """``enqueue`` on Conveyor's async side: the event loop never blocks."""
        (job,) = await self.app.aenqueue_many([self._item(task, args, kwargs)])
        return self._enqueued(task, job, args, kwargs)

    def _enqueued(self, task: DjangoTask, job: Job, args: Any, kwargs: Any) -> TaskResult:
        """What enqueue returns, without reading the job back (an idempotent repeat is READY too)."""
        return TaskResult(
            task=task,
            id=job.id,
            status=STATUS[job.state],
            enqueued_at=datetime.now().astimezone(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )

    def get_result(self, result_id: str) -> TaskResult:
        """The stored job as a TaskResult; TaskResultDoesNotExist if there is none."""
        try:
            job = self.app.get(result_id)
        except JobNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        return self._result(_django_task(job.task), job)

    async def aget_result(self, result_id: str) -> TaskResult:
        """``get_result``, awaited on Conveyor's async side."""
        try:
            job = await self.app.aget(result_id)
        except JobNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        return self._result(_django_task(job.task), job)

    def _result(self, task: DjangoTask, job: Job) -> TaskResult:
        attempts = job.attempts
        result = TaskResult(
            task=task,
            id=job.id,
            status=STATUS[job.state],
            enqueued_at=job.created_at,
            started_at=attempts[0].started_at if attempts else job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.started_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=self.alias,
            errors=[_task_error(a.traceback, a.error) for a in attempts if a.error],
            worker_ids=[a.worker or "" for a in attempts],
        )
        if job.state == "completed":
            object.__setattr__(result, "_return_value", job.to_dict(with_attempts=False).get("result"))
        return result


def _django_task(module_path: str) -> DjangoTask:
    task = import_string(module_path)
    if not isinstance(task, DjangoTask):
        raise TaskResultDoesNotExist(f"{module_path!r} is not a Django task")
    return task


def _task_error(traceback: str | None, error: str) -> TaskError:
    """Django names the exception class by path: the traceback's last line starts with it."""
    last = (traceback or error).strip().splitlines()[-1] if (traceback or error).strip() else error
    name = last.split(":", 1)[0].strip()
    if "." not in name:
        name = f"builtins.{name}"
    return TaskError(exception_class_path=name, traceback=traceback or error)


def _runner(task: DjangoTask, alias: str) -> Callable[..., Any]:
    """The function a Conveyor worker calls: Django's ``Task.call`` (async tasks too), JSON out."""

    def run(*args: Any, **kwargs: Any) -> Any:
        if task.takes_context:
            running = current_job()
            now = datetime.now().astimezone()
            result = TaskResult(
                task=task,
                id=running.id,
                status=TaskResultStatus.RUNNING,
                enqueued_at=None,
                started_at=now,
                finished_at=None,
                last_attempted_at=now,
                args=list(args),
                kwargs=dict(kwargs),
                backend=alias,
                errors=[],
                worker_ids=[""] * running.attempt,
            )
            return normalize_json(task.call(TaskContext(task_result=result), *args, **kwargs))
        return normalize_json(task.call(*args, **kwargs))

    run.__name__ = task.name
    run.__doc__ = task.func.__doc__
    return run


def __getattr__(name: str) -> Any:
    """``app``: Django set up, and the Conveyor App of the TASKS alias the worker serves."""
    if name != "app":
        raise AttributeError(name)
    import django

    django.setup()
    alias = os.environ.get(ALIAS_VARIABLE, "default")
    backend = task_backends[alias]
    if not isinstance(backend, ConveyorBackend):
        raise TypeError(
            f"TASKS[{alias!r}] uses {type(backend).__name__}, not conveyor.contrib.django.ConveyorBackend"
        )
    return backend.app


__all__ = ["ALIAS_VARIABLE", "STATUS", "ConveyorBackend", "DjangoTaskTable"]
