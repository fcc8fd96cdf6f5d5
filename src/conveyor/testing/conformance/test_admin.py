"""The failure table and the admin operations: list, stats, resubmit, delete, purge, audits."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import conveyor
from conveyor.backoff import fixed

STATES = {"pending", "processing", "retry", "completed", "failed", "cancelled"}


@pytest.fixture
def failing(app: conveyor.App) -> conveyor.Task:  # type: ignore[type-arg]
    @app.task(max_attempts=1, queue="mail")
    def send(to: str, ok: bool = False) -> str:
        if not ok:
            raise ConnectionError(f"smtp down for {to}")
        return f"sent to {to}"

    return send


def run_all(app: conveyor.App) -> None:
    worker = conveyor.Worker(app, queues=["default", "mail", "other"], install_signal_handlers=False)
    worker.process_batch(1000)


def test_stats_has_every_state_overall_and_per_queue(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    @app.task(queue="other")
    def ok() -> None: ...

    failing.enqueue("a")
    ok.enqueue()
    run_all(app)
    ok.enqueue()
    stats = app.stats()
    assert set(stats) == {"counts", "queues", "oldest_pending_age_s"}
    assert set(stats["counts"]) == STATES
    assert stats["counts"]["failed"] == 1 and stats["counts"]["completed"] == 1
    assert stats["counts"]["pending"] == 1
    assert set(stats["queues"]) == {"mail", "other"}
    assert all(set(c) == STATES for c in stats["queues"].values())
    assert stats["queues"]["mail"]["failed"] == 1 and stats["queues"]["other"]["pending"] == 1
    assert stats["oldest_pending_age_s"] is not None and stats["oldest_pending_age_s"] >= 0


def test_list_filters_and_paginates_newest_first(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    jobs = [failing.enqueue(f"u{i}") for i in range(7)]
    page = app.jobs(status="pending", queue="mail", limit=3, offset=0)
    assert page.total == 7 and [j.id for j in page.items] == [j.id for j in reversed(jobs)][:3]
    page2 = app.jobs(status="pending", limit=3, offset=3)
    assert [j.id for j in page2.items] == [j.id for j in reversed(jobs)][3:6]
    assert app.jobs(status="failed").total == 0
    assert app.jobs(queue="nope").total == 0
    assert app.jobs(task="send").total == 7
    with pytest.raises(conveyor.InvalidStatus, match="bogus"):
        app.jobs(status="bogus")
    with pytest.raises(conveyor.InvalidName):
        app.jobs(queue="bad queue")


def test_resubmit_a_failed_job_runs_it_with_a_fresh_budget(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    job = failing.enqueue("a")
    run_all(app)
    assert app.get(job.id).state == "failed"
    again = app.resubmit(job.id, kwargs={"ok": True})
    assert again.id == job.id and again.state == "pending"
    record = app.get(job.id)
    # A fresh budget; the attempt number goes on from where it was (resubmit history).
    assert (record.attempt, record.prior_attempts) == (1, 1)
    assert record.error is None and record.kwargs == {"ok": True}
    assert record.args == ["a"], "args kept when only kwargs are edited"
    run_all(app)
    assert job.result(timeout=5) == "sent to a"
    outcomes = [a.outcome for a in app.get(job.id).attempts]
    assert outcomes == ["failed", "completed"], "the audit trail keeps the history"


def test_resubmit_with_new_args(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    job = failing.enqueue("typo@example")
    run_all(app)
    app.resubmit(job.id, args=["fixed@example", True])
    run_all(app)
    assert job.result(timeout=5) == "sent to fixed@example"


def test_resubmit_refuses_jobs_that_are_not_failed(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    ok = failing.enqueue("a", ok=True)
    pending = failing.enqueue("b")
    conveyor.Worker(app, queues=["mail"], install_signal_handlers=False).process_batch(1)
    assert app.get(ok.id).state == "completed"
    with pytest.raises(conveyor.InvalidState, match="completed"):
        app.resubmit(ok.id)
    with pytest.raises(conveyor.InvalidState, match="pending"):
        app.resubmit(pending.id)
    with pytest.raises(conveyor.JobNotFound):
        app.resubmit("f" * 32)
    assert app.get(ok.id).state == "completed" and app.get(pending.id).state == "pending"


def test_resubmit_many_by_filter(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    @app.task(max_attempts=1)
    def other() -> None:
        raise RuntimeError("x")

    for i in range(5):
        failing.enqueue(f"u{i}")
    other.enqueue()
    run_all(app)
    assert app.stats()["counts"]["failed"] == 6
    assert app.resubmit_many(queue="mail") == 5
    assert app.stats()["counts"]["failed"] == 1 and app.stats()["counts"]["pending"] == 5
    assert app.resubmit_many() == 1
    with pytest.raises(conveyor.InvalidStatus):
        app.resubmit_many(status="completed")


def test_resubmit_a_cancelled_job(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    job = failing.enqueue("a", ok=True)
    job.cancel()
    app.resubmit(job.id)
    run_all(app)
    assert job.result(timeout=5) == "sent to a"


def test_delete_removes_job_and_its_attempts(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    job = failing.enqueue("a")
    keep = failing.enqueue("b")
    run_all(app)
    app.delete(job.id)
    with pytest.raises(conveyor.JobNotFound):
        app.get(job.id)
    assert app.audits(job.id) == []
    assert app.get(keep.id).state == "failed"
    with pytest.raises(conveyor.JobNotFound):
        app.delete(job.id)


def test_delete_refuses_a_processing_job(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    from conveyor.backends.base import ClaimRequest

    job = failing.enqueue("a")
    app.backend.claim(ClaimRequest(("mail",), 1, 30, "w"))
    with pytest.raises(conveyor.InvalidState, match="processing"):
        app.delete(job.id)
    assert app.get(job.id).state == "processing"


def test_purge_by_status_and_age(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    done = [failing.enqueue(f"ok{i}", ok=True) for i in range(5)]
    bad = [failing.enqueue(f"bad{i}") for i in range(3)]
    waiting = failing.options(delay=3600).enqueue("later")
    run_all(app)
    assert app.purge("completed", older_than=timedelta(days=7)) == 0, "nothing that old"
    time.sleep(0.3)
    progress: list[int] = []
    assert app.purge("completed", older_than=0.1, batch_size=2, progress=progress.append) == 5
    assert progress[-1] == 5 and len(progress) >= 3, "purged in batches"
    assert all(app.backend.get(j.id) is None for j in done)
    assert all(app.get(j.id).state == "failed" for j in bad)
    assert app.purge("failed", older_than=0) == 3
    assert app.get(waiting.id).state == "pending", "purge never touches live jobs"
    with pytest.raises(conveyor.InvalidStatus):
        app.purge("pending")


def test_audits_list_attempts_newest_first(app: conveyor.App) -> None:
    calls: list[int] = []

    @app.task(max_attempts=3, backoff=fixed(0))
    def flaky() -> None:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError("once")

    job = flaky.enqueue()
    worker = conveyor.Worker(app, install_signal_handlers=False)
    worker.process_batch(5)
    worker.process_batch(5)
    audits = app.audits(job.id)
    assert [(a.attempt, a.outcome) for a in audits] == [(2, "completed"), (1, "retry")]
    assert audits[1].error == "ConnectionError: once" and audits[1].traceback
    assert [a.outcome for a in app.audits(limit=1)] == ["completed"]
    assert app.audits(job.id, limit=1, offset=1)[0].attempt == 1


def test_resubmit_beside_a_waiting_job_that_holds_the_key(app: conveyor.App, failing: conveyor.Task) -> None:  # type: ignore[type-arg]
    old = failing.options(key="welcome:1").enqueue("a")
    run_all(app)
    assert app.get(old.id).state == "failed"
    holder = failing.options(key="welcome:1").enqueue("b")
    assert holder.id != old.id, "a failed job releases its key"
    app.resubmit(old.id, kwargs={"ok": True})
    assert (app.get(old.id).state, app.get(holder.id).state) == ("pending", "pending")
    assert failing.options(key="welcome:1").enqueue("c").id == holder.id, "the holder keeps the key"
