"""Bulk actions by filter, the error-text filter, and the operators' action trail.

The error filter matches plain text (``%``, ``_``, ``.``, ``*`` and quotes are just
characters), case-sensitively, on the job's last error; a job without an error never
matches. A dry run counts exactly what the real run then does, and changes nothing.
"""

from __future__ import annotations

import time

import pytest

import conveyor
from conveyor.actions import Actor

ODD_ERRORS = ("100% of quota_used", "price is 5_00 * 2", 'O\'Brien said "no"', "a.b.c [x]")


@pytest.fixture
def flaky(app: conveyor.App) -> conveyor.Task:  # type: ignore[type-arg]
    """A task that fails for good with the message it is given (or completes on ``ok``)."""

    @app.task(max_attempts=1, queue="bulk")
    def flaky(message: str, ok: bool = False) -> str:
        if ok:
            return "fine"
        raise ValueError(message)

    return flaky


def run_due(app: conveyor.App) -> None:
    conveyor.Worker(app, queues=["bulk", "other"], install_signal_handlers=False).process_batch(1000)


def everything(app: conveyor.App) -> list[tuple[str, str, int, object]]:
    """Every job's id, state, attempt and args: what a dry run must leave as it was."""
    return sorted((j.id, j.state, j.attempt, j.args) for j in app.jobs(limit=1000))


def test_error_filter_matches_plain_text_case_sensitively(app: conveyor.App, flaky: conveyor.Task) -> None:  # type: ignore[type-arg]
    jobs = {message: flaky.enqueue(message) for message in (*ODD_ERRORS, "smtp timeout", "SMTP TIMEOUT")}
    waiting = flaky.enqueue("never ran", ok=True)
    run_due(app)
    flaky.enqueue("still pending")
    for message in ODD_ERRORS:
        page = app.jobs(error=message)
        assert [j.id for j in page] == [jobs[message].id], message
    assert app.jobs(error="%").total == 1, "% is a character, not a wildcard"
    assert app.jobs(error="_").total == 2, "_ is a character, not a wildcard"
    assert app.jobs(error="timeout").total == 1 and app.jobs(error="TIMEOUT").total == 1
    assert app.jobs(error="smtp").total == 1, "case-sensitive"
    assert app.jobs(error="ValueError").total == 6, "the stored error starts with the exception's type"
    assert app.jobs(error="ValueError: smtp").total == 1
    assert app.jobs(error="zzz-no-such-text").total == 0
    assert app.get(waiting.id).state == "completed" and app.get(waiting.id).error is None
    assert app.jobs(status="completed", error="e").total == 0, "no error never matches"
    combined = app.jobs(status="failed", queue="bulk", task="flaky", error="quota")
    assert [j.id for j in combined] == [jobs["100% of quota_used"].id]
    assert app.jobs(status="completed", error="quota").total == 0
    with pytest.raises(ValueError, match="error must be text"):
        app.jobs(error="")


def test_bulk_resubmit_by_error_text_dry_run_first(app: conveyor.App, flaky: conveyor.Task) -> None:  # type: ignore[type-arg]
    timeouts = [flaky.enqueue(f"smtp timeout after {i}s") for i in range(4)]
    others = [flaky.enqueue("bad address") for _ in range(2)]
    run_due(app)
    before = everything(app)
    assert app.resubmit_many(error="timeout", dry_run=True) == 4
    assert everything(app) == before, "a dry run changes nothing"
    assert app.resubmit_many(error="timeout") == 4
    assert {app.get(j.id).state for j in timeouts} == {"pending"}
    assert {app.get(j.id).state for j in others} == {"failed"}
    assert app.resubmit_many(error="timeout", dry_run=True) == 0


def test_bulk_delete_by_filter_skips_running_jobs(app: conveyor.App, flaky: conveyor.Task) -> None:  # type: ignore[type-arg]
    failed = [flaky.enqueue(f"boom {i}") for i in range(3)]
    run_due(app)
    waiting = [flaky.enqueue("later", ok=True) for _ in range(2)]
    (claimed,) = app.backend.claim(
        conveyor.backends.base.ClaimRequest(("bulk",), 1, 30.0, "conformance-worker")
    )
    assert claimed.id in {j.id for j in waiting}
    before = everything(app)
    dry = app.delete_many(queue="bulk", dry_run=True)
    assert (dry.deleted, dry.skipped) == (4, 1)
    assert everything(app) == before, "a dry run changes nothing"
    done = app.delete_many(queue="bulk")
    assert (done.deleted, done.skipped) == (dry.deleted, dry.skipped)
    left = app.jobs(limit=100)
    assert [j.id for j in left] == [claimed.id] and left.items[0].state == "processing"
    for job in failed:
        with pytest.raises(conveyor.JobNotFound):
            app.get(job.id)
    assert all(a.job_id == claimed.id for a in app.audits(limit=100))


def test_bulk_delete_by_status_and_error_keeps_the_rest(app: conveyor.App, flaky: conveyor.Task) -> None:  # type: ignore[type-arg]
    doomed = [flaky.enqueue("card declined") for _ in range(3)]
    kept = flaky.enqueue("network down")
    run_due(app)
    fine = flaky.enqueue("x", ok=True)
    dry = app.delete_many(status="failed", error="declined", dry_run=True)
    assert (dry.deleted, dry.skipped) == (3, 0)
    done = app.delete_many(status="failed", error="declined")
    assert (done.deleted, done.skipped) == (3, 0)
    assert {j.id for j in app.jobs(limit=100)} == {kept.id, fine.id}
    assert all(app.jobs(error="declined").total == 0 for _ in doomed)
    with pytest.raises(ValueError, match="at least one filter"):
        app.delete_many()


def test_bulk_delete_releases_idempotency_keys(app: conveyor.App, flaky: conveyor.Task) -> None:  # type: ignore[type-arg]
    first = flaky.options(key="order-9").enqueue("declined")
    run_due(app)
    assert app.delete_many(status="failed").deleted == 1
    again = flaky.options(key="order-9").enqueue("x", ok=True)
    assert again.id != first.id


def test_actions_record_who_did_what(app: conveyor.App, flaky: conveyor.Task) -> None:  # type: ignore[type-arg]
    ops = Actor("admin:ops", "admin")
    a, b, c = (flaky.enqueue(f"timeout {i}") for i in range(3))
    run_due(app)
    started = time.time() - 5
    app.resubmit(a.id, args=["fixed"], actor=ops)
    assert app.resubmit_many(error="timeout", actor=Actor("write:3fa9c2d1", "write")) == 2
    app.cancel(a.id)  # no actor: the App's own (python)
    app.delete(b.id, actor=ops)
    assert app.resubmit_many(error="no such error", actor=ops) == 0  # changed nothing: not recorded

    trail = app.actions()
    assert [(x.action, x.actor, x.role) for x in trail] == [
        ("delete", "admin:ops", "admin"),
        ("cancel", "python", None),
        ("resubmit_many", "write:3fa9c2d1", "write"),
        ("resubmit", "admin:ops", "admin"),
    ]
    assert all(x.at.timestamp() >= started for x in trail)
    delete, cancel, bulk, single = trail
    assert (cancel.job_id, cancel.detail) == (a.id, None)
    assert (delete.job_id, delete.count) == (b.id, 1)
    assert (bulk.job_id, bulk.count) == (None, 2)
    assert bulk.detail == {"filter": {"status": "failed", "error": "timeout"}}
    assert single.detail == {"edited": True, "previous": {"args": ["timeout 0"], "kwargs": {}}}
    # A job's history lists single and bulk actions naming it, newest first.
    assert [x.action for x in app.actions(job_id=a.id)] == ["cancel", "resubmit"]
    assert [x.action for x in app.actions(job_id=c.id)] == ["resubmit_many"]
    # The record of a deletion outlives the job.
    assert [x.action for x in app.actions(job_id=b.id)] == ["delete", "resubmit_many"]
    assert [x.action for x in app.actions(limit=2, offset=1)] == ["cancel", "resubmit_many"]
    assert app.actions(job_id="f" * 32) == []


def test_purge_and_bulk_delete_are_recorded_with_their_counts(
    app: conveyor.App,
    flaky: conveyor.Task,  # type: ignore[type-arg]
) -> None:
    for i in range(3):
        flaky.enqueue(f"gone {i}")
    flaky.enqueue("done", ok=True)
    run_due(app)
    assert app.purge("completed") == 1
    assert app.delete_many(status="failed", actor=Actor("admin:ops", "admin")).deleted == 3
    assert app.purge("completed") == 0  # nothing purged: nothing recorded
    bulk, purge = app.actions()
    assert (bulk.action, bulk.count, bulk.detail) == ("delete_many", 3, {"filter": {"status": "failed"}})
    assert (purge.action, purge.count, purge.actor) == ("purge", 1, "python")
    assert purge.detail is not None and purge.detail["status"] == ["completed"]
