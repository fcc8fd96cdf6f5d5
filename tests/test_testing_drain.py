"""conveyor.testing.drain: every due job run in-process, through the backend, on every backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import conveyor
from conveyor.backoff import fixed
from conveyor.testing import DrainResult, drain


def test_drain_runs_every_due_job_and_counts_each_outcome(app: conveyor.App) -> None:
    @app.task()
    def add(a: int, b: int) -> tuple[int, int]:
        return (a + b, a * b)

    @app.task(max_attempts=1)
    def broken() -> None:
        raise ValueError("no such row")

    @app.task(max_attempts=3, backoff=fixed(3600))
    def flaky() -> None:
        raise ConnectionError("upstream down")

    done, failed, retrying = add.enqueue(2, 3), broken.enqueue(), flaky.enqueue()
    result = drain(app)
    assert result == DrainResult(processed=3, completed=1, failed=1, retried=1, cancelled=0)
    assert result.to_dict() == {"processed": 3, "completed": 1, "failed": 1, "retried": 1, "cancelled": 0}
    # The result went through the stored JSON, as in production: the tuple comes back a list.
    assert done.result(timeout=1) == [5, 6]
    assert app.get(failed.id).state == "failed" and app.get(failed.id).error == "ValueError: no such row"
    # The retry waits for its backoff: it is not due, so the drain ended without it.
    stored = app.get(retrying.id)
    assert stored.state == "retry" and stored.attempt == 1
    assert drain(app) == DrainResult()


def test_drain_serves_only_the_queues_asked_for(app: conveyor.App) -> None:
    @app.task(queue="emails")
    def send() -> None: ...

    @app.task(queue="reports")
    def build() -> None: ...

    email, report = send.enqueue(), build.enqueue()
    assert drain(app, ["emails"]).completed == 1
    assert email.refresh().state == "completed" and report.refresh().state == "pending"
    assert drain(app).completed == 1
    assert report.refresh().state == "completed"


def test_drain_leaves_delayed_jobs_alone(app: conveyor.App) -> None:
    @app.task()
    def later() -> None: ...

    job = later.options(delay=60).enqueue()
    assert drain(app) == DrainResult()
    stored = app.get(job.id)
    assert stored.state == "pending" and stored.attempt == 0


def test_skip_retry_delays_drives_jobs_to_their_final_state(app: conveyor.App) -> None:
    calls: list[int] = []

    @app.task(max_attempts=3, backoff=fixed(3600))
    def recovers() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)} failed")
        return "ok"

    @app.task(max_attempts=2)
    def asks_for_an_hour() -> None:
        raise conveyor.RetryAfter(3600)

    recovered, exhausted = recovers.enqueue(), asks_for_an_hour.enqueue()
    result = drain(app, skip_retry_delays=True)
    assert result == DrainResult(processed=5, completed=1, failed=1, retried=3, cancelled=0)
    assert recovered.result(timeout=1) == "ok"
    stored = app.get(recovered.id)
    assert stored.attempt == 3
    outcomes = [a.outcome for a in sorted(stored.attempts, key=lambda a: a.attempt)]
    assert outcomes == ["retry", "retry", "completed"]
    assert (app.get(exhausted.id).state, app.get(exhausted.id).attempt) == ("failed", 2)


def test_drain_runs_jobs_that_tasks_enqueue_and_queues_no_task_names(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> int:
        return n

    @app.task()
    def fan_out(n: int) -> None:
        for i in range(n):
            work.enqueue(i)

    app.enqueue("work", args=[99], queue="elsewhere")
    fan_out.enqueue(4)
    assert drain(app) == DrainResult(processed=6, completed=6)
    assert app.stats()["counts"]["completed"] == 6


def test_max_jobs_bounds_a_task_that_enqueues_itself_forever(app: conveyor.App) -> None:
    @app.task()
    def again() -> None:
        again.enqueue()

    again.enqueue()
    assert drain(app, max_jobs=5).processed == 5
    assert app.stats()["counts"]["pending"] == 1


def test_bad_bounds_are_refused(app: conveyor.App) -> None:
    with pytest.raises(ValueError, match="max_jobs must be >= 1, got 0"):
        drain(app, max_jobs=0)
    with pytest.raises(ValueError, match="max_retry_delay must be None or >= 0 seconds, got -1"):
        conveyor.Worker(app, max_retry_delay=-1)


def test_drain_needs_no_pytest(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"  # any import of pytest now fails
        "import conveyor\n"
        "from conveyor.testing import drain\n"
        "app = conveyor.App(sys.argv[1])\n"
        "@app.task()\n"
        "def hello() -> str:\n"
        "    return 'hi'\n"
        "job = hello.enqueue()\n"
        "print(drain(app).completed, job.result(timeout=1))\n"
    )
    url = f"sqlite:///{tmp_path / 'users.db'}"
    run = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "1 hi"
