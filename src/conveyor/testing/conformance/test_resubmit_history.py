"""Resubmit history: attempt numbers keep counting across resubmits while the budget restarts,
and every attempt record keeps the arguments that attempt ran with."""

from __future__ import annotations

from dataclasses import astuple

import conveyor
from conveyor.backends.base import WORKER_LOST, ClaimedJob, ClaimRequest
from conveyor.backoff import fixed
from conveyor.testing import drain
from conveyor.testing.helpers import wait_for


def test_attempt_numbers_keep_counting_and_the_budget_restarts(app: conveyor.App) -> None:
    runs: list[int] = []

    @app.task(max_attempts=3, backoff=fixed(0))
    def flaky(n: int) -> None:
        runs.append(conveyor.current_job().attempt)
        raise ConnectionError(f"down {n}")

    job = flaky.enqueue(1)
    drain(app, skip_retry_delays=True)
    first = app.get(job.id)
    assert (first.state, first.attempt, first.prior_attempts) == ("failed", 3, 0)

    resubmitted = app.resubmit(job.id)
    assert (resubmitted.state, resubmitted.attempt, resubmitted.prior_attempts) == ("pending", 3, 3)
    assert resubmitted.max_attempts == 3
    drain(app, skip_retry_delays=True)
    record = app.get(job.id)
    assert (record.state, record.attempt, record.prior_attempts) == ("failed", 6, 3)
    assert runs == [1, 2, 3, 4, 5, 6]
    assert [(a.attempt, a.outcome) for a in record.attempts] == [
        (1, "retry"),
        (2, "retry"),
        (3, "failed"),
        (4, "retry"),
        (5, "retry"),
        (6, "failed"),
    ]
    data = record.to_dict()
    assert data["prior_attempts"] == 3 and [a["attempt"] for a in data["attempts"]] == [1, 2, 3, 4, 5, 6]


def test_each_attempt_keeps_the_arguments_it_ran_with(app: conveyor.App) -> None:
    @app.task(max_attempts=1)
    def send(to: str, subject: str = "hi") -> str:
        if to.endswith("@bad"):
            raise ConnectionError(f"no route to {to}")
        return f"sent {subject} to {to}"

    job = send.enqueue("a@bad", subject="Welcome")
    drain(app)
    app.resubmit(job.id, args=["b@bad"])
    drain(app)
    app.resubmit(job.id, args=["c@good"], kwargs={"subject": "Again"})
    drain(app)

    record = app.get(job.id)
    assert record.state == "completed" and record.result(timeout=5) == "sent Again to c@good"
    assert (record.args, record.kwargs) == (["c@good"], {"subject": "Again"})
    ran_with = [(a.attempt, a.outcome, a.args, a.kwargs) for a in record.attempts]
    assert ran_with == [
        (1, "failed", ["a@bad"], {"subject": "Welcome"}),
        (2, "failed", ["b@bad"], {"subject": "Welcome"}),  # kwargs kept when only args are edited
        (3, "completed", ["c@good"], {"subject": "Again"}),
    ]
    stored = app.backend.get(job.id)
    assert stored is not None
    attempts_json = stored.to_dict()["attempts"]
    assert [(a["attempt"], a["args"], a["kwargs"]) for a in attempts_json] == [
        (n, args, kwargs) for n, _, args, kwargs in ran_with
    ]
    newest = app.audits(job.id, limit=1)[0]
    assert (newest.attempt, newest.args, newest.kwargs) == (3, ["c@good"], {"subject": "Again"})


def test_the_reaper_counts_against_the_budget_of_the_current_submission(app: conveyor.App) -> None:
    """Poison pills after a resubmit: a lost lease counts, and ends the job only once this
    submission's attempts are spent (not at once because the job's number is already high)."""

    @app.task(max_attempts=2)
    def crash(n: int) -> None:
        raise conveyor.Permanent("boom")

    job = crash.enqueue(7)
    drain(app)
    assert app.get(job.id).attempt == 1
    app.resubmit(job.id, args=[8])
    backend = app.backend

    def claim_and_lose() -> int:
        found: list[ClaimedJob] = wait_for(
            lambda: backend.claim(ClaimRequest(("default",), 1, 0.05, "gone")), 10
        )
        (claimed,) = found
        assert claimed.prior_attempts == 1
        wait_for(lambda: sum(astuple(backend.reap_expired())), 10)
        return claimed.attempt

    assert claim_and_lose() == 2
    after_first = app.get(job.id)
    assert after_first.state == "pending", "one run of a 2-attempt budget is not spent"
    assert claim_and_lose() == 3
    record = app.get(job.id)
    assert (record.state, record.error, record.attempt) == ("failed", WORKER_LOST, 3)
    assert [(a.attempt, a.outcome, a.args) for a in record.attempts] == [
        (1, "failed", [7]),
        (2, "lost", [8]),
        (3, "lost", [8]),
    ]


def test_a_cancelled_job_resubmitted_before_it_ran_starts_at_attempt_one(app: conveyor.App) -> None:
    @app.task()
    def later(n: int) -> int:
        return n

    job = later.options(delay=3600).enqueue(5)
    app.cancel(job.id)
    resubmitted = app.resubmit(job.id)
    assert (resubmitted.attempt, resubmitted.prior_attempts) == (0, 0)
    drain(app)
    record = app.get(job.id)
    assert record.state == "completed" and [(a.attempt, a.args) for a in record.attempts] == [(1, [5])]
