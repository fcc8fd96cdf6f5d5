"""Django's task API on ConveyorBackend with a real Conveyor worker (in-process and `conveyor worker`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from functools import partial
from pathlib import Path

import djtasks
import pytest
from django.db import connection, transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils import timezone

from conveyor.backends.base import ClaimRequest
from conveyor.contrib.django import ConveyorBackend
from conveyor.testing.helpers import running_worker, wait_for

BACKEND = task_backends["default"]
APP = BACKEND.app


@pytest.fixture(autouse=True)
def empty_store() -> None:
    for job in APP.jobs(limit=10_000):
        if job.state != "processing":
            APP.delete(job.id)


def finished(result_id: str):
    return wait_for(lambda: (r := BACKEND.get_result(result_id)).is_finished and r, timeout=30)


def test_backend_declares_what_it_supports() -> None:
    assert isinstance(BACKEND, ConveyorBackend) and default_task_backend.alias == "default"
    assert BACKEND.supports_defer and BACKEND.supports_async_task
    assert BACKEND.supports_get_result and BACKEND.supports_priority
    with pytest.raises(InvalidTask, match="Queue"):
        djtasks.add.using(queue_name="unknown").enqueue(1, 2)


def test_enqueue_and_result_through_a_worker() -> None:
    result = djtasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert result.args == [2, 3] and result.backend == "default"
    with running_worker(APP, queues=["default"]):
        done = finished(result.id)
        result.refresh()
    assert done.status == TaskResultStatus.SUCCESSFUL and done.return_value == 5
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert done.attempts == 1 and done.worker_ids[0] and done.errors == []
    assert done.enqueued_at <= done.started_at <= done.finished_at
    assert djtasks.add.get_result(result.id).return_value == 5


def test_failure_maps_to_failed_with_the_exception_class() -> None:
    result = djtasks.broken.enqueue("bad input 42")
    with running_worker(APP, queues=["default"]):
        done = finished(result.id)
    assert done.status == TaskResultStatus.FAILED
    (error,) = done.errors
    assert error.exception_class is ValueError and "bad input 42" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        done.return_value  # noqa: B018 - the property raises


def test_async_tasks_aenqueue_and_aget_result() -> None:
    async def enqueue() -> str:
        result = await djtasks.async_double.aenqueue(21)
        await APP.aclose()
        return result.id

    result_id = asyncio.run(enqueue())
    with running_worker(APP, queues=["default"]):
        finished(result_id)

    async def fetch():
        try:
            return await djtasks.async_double.aget_result(result_id)
        finally:
            await APP.aclose()

    assert asyncio.run(fetch()).return_value == 42


def test_priority_orders_the_claims() -> None:
    low = djtasks.add.using(priority=-10).enqueue(1, 1)
    high = djtasks.add.using(priority=50).enqueue(2, 2)
    middle = djtasks.add.enqueue(3, 3)
    claimed = APP.backend.claim(ClaimRequest(("default",), 10, 30.0, "test"))
    assert [j.id for j in claimed] == [high.id, middle.id, low.id]


def test_run_after_defers_the_job() -> None:
    later = djtasks.add.using(run_after=timezone.now() + timedelta(minutes=5)).enqueue(1, 2)
    due = djtasks.add.using(run_after=timezone.now() - timedelta(seconds=1)).enqueue(3, 4)
    claimed = APP.backend.claim(ClaimRequest(("default",), 10, 30.0, "test"))
    assert [j.id for j in claimed] == [due.id]
    assert BACKEND.get_result(later.id).status == TaskResultStatus.READY


def test_queue_names_and_context() -> None:
    report = djtasks.report.enqueue("q3")
    numbered = djtasks.attempt_number.enqueue()
    with running_worker(APP, queues=["default", "reports"]):
        assert finished(report.id).return_value == "report q3"
        assert finished(numbered.id).return_value == 1
    assert APP.get(report.id).queue == "reports"


def test_on_commit_enqueues_only_when_the_transaction_commits() -> None:
    with transaction.atomic():
        transaction.on_commit(partial(djtasks.add.enqueue, 5, 5))
        assert APP.stats()["counts"]["pending"] == 0, "nothing before the commit"
    assert APP.stats()["counts"]["pending"] == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(partial(djtasks.add.enqueue, 6, 6))
        raise RuntimeError("rolled back")
    assert APP.stats()["counts"]["pending"] == 1, "a rolled-back transaction enqueues nothing"
    connection.close()


def test_unknown_result_id() -> None:
    with pytest.raises(TaskResultDoesNotExist):
        BACKEND.get_result("no-such-job")


def test_conveyor_worker_command_runs_django_tasks(tmp_path: Path) -> None:
    result = djtasks.add.enqueue(20, 22)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "conveyor.contrib.django:app", "--queues", "default"],
        env=env,
        cwd=tmp_path,
    )
    try:
        assert finished(result.id).return_value == 42
    finally:
        worker.terminate()
        assert worker.wait(30) == 0
