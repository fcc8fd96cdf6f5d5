"""The one job type: what enqueue, get, jobs, cancel and resubmit return, and how it loads."""

from __future__ import annotations

from datetime import datetime

import pytest

import conveyor

STORED_FIELDS = (
    "task",
    "queue",
    "state",
    "status",
    "args",
    "kwargs",
    "attempt",
    "max_attempts",
    "priority",
    "run_at",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "traceback",
    "key",
    "worker",
    "cancel_requested",
    "on_complete",
    "attempts",
)


def test_get_gives_a_job_whose_result_is_the_method(app: conveyor.App) -> None:
    @app.task()
    def add(a: int, b: int) -> int:
        return a + b

    job = add.enqueue(2, 3)
    conveyor.Worker(app, install_signal_handlers=False).process_batch(10)
    fetched = app.get(job.id)
    assert isinstance(fetched, conveyor.Job) and fetched == job
    assert fetched.result(timeout=5) == 5
    assert (fetched.state, fetched.status, fetched.attempt) == ("completed", "completed", 1)
    assert [a.outcome for a in fetched.attempts] == ["completed"]
    assert all(isinstance(a, conveyor.AttemptRecord) for a in fetched.attempts)


def test_a_job_carries_every_stored_field(app: conveyor.App) -> None:
    @app.task(queue="mail")
    def send(to: str, urgent: bool = False) -> None: ...

    job = app.get(send.options(priority=7, key="k-1").enqueue("a@example.com", urgent=True).id)
    missing = [name for name in STORED_FIELDS if not hasattr(job, name)]
    assert not missing
    assert (job.task, job.queue, job.priority, job.key) == ("send", "mail", 7, "k-1")
    assert (job.args, job.kwargs) == (["a@example.com"], {"urgent": True})
    assert isinstance(job.created_at, datetime) and isinstance(job.run_at, datetime)
    assert (job.started_at, job.finished_at, job.error, job.worker) == (None, None, None, None)
    data = job.to_dict()
    assert data["status"] == "pending" and data["attempts"] == [] and data["result"] is None
    assert "attempts" not in job.to_dict(with_attempts=False)


def test_a_job_from_enqueue_loads_its_fields_on_first_access(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    job = work.enqueue(41)
    assert job.state == "pending"
    calls: list[str] = []
    real_get = app.backend.get

    def counting_get(job_id: str) -> object:
        calls.append(job_id)
        return real_get(job_id)

    app.backend.get = counting_get  # type: ignore[method-assign]
    assert job.args == [41] and job.task == "work" and job.max_attempts == 4
    assert calls == [job.id], "one load on first access, none after"
    job.refresh()
    assert calls == [job.id, job.id]


def test_jobs_gives_an_iterable_page_of_jobs(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    enqueued = app.enqueue_many([{"task": "work", "args": [n]} for n in range(5)])
    page = app.jobs(status="pending", limit=3)
    assert isinstance(page, conveyor.JobPage)
    assert len(page) == 3 and page.total == 5 and page.items == list(page)
    assert [job.args for job in page] == [[4], [3], [2]], "newest first"
    assert all(isinstance(job, conveyor.Job) for job in app.jobs())
    assert {job.id for job in app.jobs()} == {job.id for job in enqueued}
    assert len(app.jobs(status="failed")) == 0


def test_cancel_and_resubmit_give_loaded_jobs(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    job = work.enqueue(1)
    cancelled = app.cancel(job.id)
    assert isinstance(cancelled, conveyor.Job) and cancelled.state == "cancelled"
    assert cancelled.finished_at is not None
    again = app.resubmit(job.id, args=[2])
    assert (again.state, again.args) == ("pending", [2])
    with pytest.raises(TimeoutError, match="still pending"):
        cancelled.result(timeout=0)  # result() always reloads: the job is waiting again
