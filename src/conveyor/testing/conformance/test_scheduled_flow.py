"""Schedules meet flow control: a tick's job is claimed, counted and awaited like any other job.

The scheduler stores its jobs with its own statements and scripts (``schedule_fire``);
they must take the enqueue path's flow-control steps (a group's fair rank, the fair sets
of a managed queue), so a queue's limits, its pause and its fair order hold for them;
and finishing a job the flow claim leased wakes its ``result()`` waiters.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import conveyor
from conveyor.backends.base import ClaimedJob, ClaimRequest, Outcome, ScheduledJob, ScheduleFiring
from conveyor.testing.helpers import wait_for

QUEUE = "limited"


def claim_limited(app: conveyor.App, n: int) -> list[ClaimedJob]:
    return app.backend.claim(ClaimRequest((QUEUE,), n, 30.0, "w"))


def complete(app: conveyor.App, jobs: list[ClaimedJob]) -> None:
    now = time.time()
    outcomes = [Outcome(j.id, j.lease_token, "completed", j.attempt, "w", now, now, "null") for j in jobs]
    assert all(app.backend.finish_many(outcomes))


def fire_ticks(app: conveyor.App, name: str, ticks: list[float]) -> list[str]:
    """Store one job per tick through ``schedule_fire`` (the scheduler's own path); their ids."""
    record = next(r for r in app.backend.schedule_list() if r.spec.name == name)
    jobs = [ScheduledJob(tick, app.prepare_scheduled(record.spec)) for tick in ticks]
    expected = record.next_run_at
    firing = ScheduleFiring(name, (expected, expected + 3600.0), tuple(jobs))
    assert app.backend.schedule_fire([firing]) == [True]
    return [job.id for _, job in jobs]


@pytest.fixture
def scheduled(app: conveyor.App) -> conveyor.App:
    @app.task(queue=QUEUE, group_by="tenant")
    def report(tenant: str | None = None) -> None: ...

    app.schedule("hourly", task="report", every=3600)
    return app


def test_tick_jobs_in_a_limited_queue_start_within_its_concurrency(scheduled: conveyor.App) -> None:
    app = scheduled
    app.configure_queue(QUEUE, concurrency=1)
    ids = fire_ticks(app, "hourly", [3600.0, 7200.0, 10800.0])
    assert app.queue(QUEUE)["counts"]["pending"] == 3
    (first,) = claim_limited(app, 10)
    assert first.id in ids and app.get(first.id).schedule == "hourly"
    assert claim_limited(app, 10) == [], "the queue's one slot is held by the running tick"
    shown = app.queue(QUEUE)
    assert shown["processing"] == 1 and shown["counts"]["pending"] == 2
    complete(app, [first])
    (second,) = claim_limited(app, 10)
    assert second.id in ids and second.id != first.id
    counts = app.queue(QUEUE)["counts"]
    assert (counts["pending"], counts["processing"], counts["completed"]) == (1, 1, 1)


def test_a_tick_job_waits_while_its_queue_is_paused(scheduled: conveyor.App) -> None:
    app = scheduled
    app.pause_queue(QUEUE)
    (run,) = fire_ticks(app, "hourly", [3600.0])
    manual = app.run_schedule("hourly")
    assert claim_limited(app, 10) == [], "a paused queue gives nothing, ticks included"
    assert app.queue(QUEUE)["counts"]["pending"] == 2
    app.resume_queue(QUEUE)
    assert {j.id for j in claim_limited(app, 10)} == {run, manual.id}


def test_a_grouped_tick_job_takes_its_fair_place_and_its_group_limit(app: conveyor.App) -> None:
    @app.task(queue=QUEUE, group_by="tenant")
    def report(tenant: str) -> None: ...

    app.configure_queue(QUEUE, group_concurrency=1)
    backlog = [report.enqueue("a").id for _ in range(3)]
    app.schedule("a-hourly", task="report", every=3600, kwargs={"tenant": "a"})
    (tick,) = fire_ticks(app, "a-hourly", [3600.0])
    other = report.enqueue("b").id
    assert app.get(tick).group == "a", "the tick job carries its group"
    taken = claim_limited(app, 10)
    assert {j.id for j in taken} == {backlog[0], other}, "one per group, in fair order"
    complete(app, taken)
    taken = claim_limited(app, 10)
    assert [j.id for j in taken] == [backlog[1]], "the tick waits behind its group's older jobs"
    complete(app, taken)
    complete(app, claim_limited(app, 10))
    (last,) = claim_limited(app, 10)
    assert last.id == tick and last.group == "a"


def test_jobs_leased_by_the_flow_claim_wake_their_waiters_when_finished(scheduled: conveyor.App) -> None:
    app = scheduled
    app.configure_queue(QUEUE, concurrency=2, group_concurrency=1)
    (tick,) = fire_ticks(app, "hourly", [3600.0])
    grouped = app.enqueue("report", kwargs={"tenant": "a"})
    woken: set[str] = set()
    lock = threading.Lock()

    def wake_for(job_id: str) -> Any:
        def wake() -> None:
            with lock:
                woken.add(job_id)

        return wake

    watches = [app.backend.watch_finishes([i], wake_for(i)) for i in (tick, grouped.id)]
    wakes = all(w.has_wakeups for w in watches)  # SQLite's waiters poll: result() is the check there
    try:
        if wakes:
            wait_for(lambda: all(w.live for w in watches), timeout=10)
        taken = claim_limited(app, 10)
        assert {j.id for j in taken} == {tick, grouped.id}
        by_id = {j.id: j for j in taken}
        timer = threading.Timer(0.2, complete, [app, [by_id[tick]]])
        timer.start()
        assert app.get(tick).result(timeout=20) is None, "result() of a tick job sees its finish"
        timer.join()
        complete(app, [by_id[grouped.id]])
        if wakes:
            wait_for(lambda: woken == {tick, grouped.id}, timeout=10)
    finally:
        for watch in watches:
            watch.close()
