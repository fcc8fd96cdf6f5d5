"""Schedules, retention and failure alerts: what the maintenance services need of a backend.

Each tick is one job however many schedulers race (the compare-and-set of
``schedule_fire``), missed ticks follow their policy, the pruner deletes finished
jobs with their attempts and keeps the failure table, and an alert fires at most
once per window.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections import Counter
from typing import Any

import pytest

import conveyor
from conveyor.backends.base import (
    AlertFiring,
    AlertSpec,
    MissedPolicy,
    ScheduledJob,
    ScheduleFiring,
    ScheduleSpec,
)
from conveyor.testing.helpers import running_worker, wait_for
from conveyor.worker.services import Alerter, Pruner, Scheduler


def _spec(
    name: str = "tick", task: str = "tick", every: float = 1.0, next_run_at: float = 100.0
) -> ScheduleSpec:
    return ScheduleSpec(
        name, task, None, every, "UTC", '{"args":[],"kwargs":{}}', None, "latest", next_run_at
    )


def _tick(job: conveyor.Job) -> float:
    assert job.scheduled_for is not None, f"job {job.id} has no scheduled_for"
    return job.scheduled_for.timestamp()


def _record(app: conveyor.App, name: str) -> Any:
    return next(r for r in app.backend.schedule_list() if r.spec.name == name)


@pytest.fixture
def ticking(app: conveyor.App) -> conveyor.App:
    @app.task()
    def tick(n: int = 0) -> int:
        return n

    return app


# -- storage -------------------------------------------------------------------------------
def test_schedule_save_keeps_the_next_tick_unless_the_timing_changed(ticking: conveyor.App) -> None:
    backend = ticking.backend
    backend.schedule_save([_spec(next_run_at=100.0)])
    backend.schedule_save([_spec(next_run_at=200.0)])  # same timing: a redeploy keeps its place
    assert _record(ticking, "tick").next_run_at == 100.0
    backend.schedule_save([_spec(every=2.0, next_run_at=300.0)])  # changed timing starts over
    record = _record(ticking, "tick")
    assert record.next_run_at == 300.0 and record.spec.every == 2.0 and not record.paused
    assert backend.schedule_pause(["tick"], True) == 1 and _record(ticking, "tick").paused
    backend.schedule_save([_spec(every=2.0)])
    assert _record(ticking, "tick").paused, "paused is run-time state: saving again keeps it"
    assert backend.schedule_pause(["tick", "nope"], False, 400.0) == 1
    assert _record(ticking, "tick").next_run_at == 400.0 and not _record(ticking, "tick").paused
    assert backend.schedule_delete(["tick", "nope"]) == 1 and backend.schedule_list() == []


def test_schedule_fire_applies_once_per_expected_tick_and_tags_the_job(ticking: conveyor.App) -> None:
    backend = ticking.backend
    backend.schedule_save([_spec(next_run_at=100.0)])
    spec = _record(ticking, "tick").spec
    first, second = (ticking.prepare_scheduled(spec) for _ in range(2))
    applied = backend.schedule_fire(
        [
            ScheduleFiring("tick", (100.0, 101.0), (ScheduledJob(100.0, first),)),
            ScheduleFiring("tick", (100.0, 101.0), (ScheduledJob(100.0, second),)),
        ]
    )
    assert applied == [True, False]
    assert backend.get(second.id) is None
    job = ticking.get(first.id)
    assert job.schedule == "tick" and _tick(job) == 100.0
    data = job.to_dict()
    assert data["schedule"] == "tick" and data["scheduled_for"].startswith("1970-01-01T00:01:40")
    record = _record(ticking, "tick")
    assert (record.next_run_at, record.last_run_at, record.last_job_id) == (101.0, 100.0, first.id)
    backend.schedule_pause(["tick"], True)
    third = ticking.prepare_scheduled(spec)
    assert backend.schedule_fire([ScheduleFiring("tick", (101.0, 102.0), (ScheduledJob(101.0, third),))]) == [
        False
    ], "a paused schedule does not fire"


def test_concurrent_firings_of_one_tick_store_one_job(ticking: conveyor.App) -> None:
    backend = ticking.backend
    backend.schedule_save([_spec(next_run_at=100.0)])
    spec = _record(ticking, "tick").spec
    results: list[bool] = []
    start = threading.Barrier(4)

    def fire() -> None:
        job = ticking.prepare_scheduled(spec)
        start.wait()
        results.extend(
            backend.schedule_fire([ScheduleFiring("tick", (100.0, 101.0), (ScheduledJob(100.0, job),))])
        )

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False, False, False, True]
    assert ticking.jobs(task="tick").total == 1


def test_run_now_stores_a_job_without_moving_the_schedule(ticking: conveyor.App) -> None:
    ticking.schedule("hourly", task="tick", cron="0 * * * *", kwargs={"n": 7})
    before = ticking.schedules()[0]
    job = ticking.run_schedule("hourly")
    after = ticking.schedules()[0]
    assert after["next_run_at"] == before["next_run_at"] and after["last_job_id"] == job.id
    assert job.refresh().schedule == "hourly" and job.kwargs == {"n": 7}
    with pytest.raises(conveyor.ScheduleNotFound, match="nope"):
        ticking.run_schedule("nope")


# -- the scheduler ---------------------------------------------------------------------------
def test_three_schedulers_enqueue_each_tick_once(ticking: conveyor.App, backend_url: str) -> None:
    apps = [conveyor.App(backend_url) for _ in range(3)]
    for other in apps:
        other.declare("tick")
    ticking.schedule("tick", task="tick", every=1)
    schedulers = [Scheduler(other, 0.1) for other in apps]
    started = ticking.backend.now()
    for s in schedulers:
        s.start()
    try:
        wait_for(lambda: ticking.jobs(task="tick").total >= 3, timeout=15)
    finally:
        for s in schedulers:
            s.stop()
        for other in apps:
            other.close()
    ticks = [_tick(job) for job in ticking.jobs(task="tick", limit=100)]
    assert max(Counter(ticks).values()) == 1, f"a tick was enqueued twice: {sorted(ticks)}"
    ticks.sort()
    assert all(b - a == 1.0 for a, b in itertools.pairwise(ticks)), f"a tick was skipped: {ticks}"
    assert ticks[0] >= math.floor(started)


@pytest.mark.parametrize("missed", ["latest", "skip"])
def test_missed_ticks_run_the_latest_once_or_none(ticking: conveyor.App, missed: MissedPolicy) -> None:
    before = ticking.backend.now()
    # The state five seconds without any worker leave behind: the first unfired tick is 5 s old.
    payload = '{"args":[],"kwargs":{}}'
    spec = ScheduleSpec("tick", "tick", None, 1.0, "UTC", payload, None, missed, math.floor(before) - 5)
    ticking.backend.schedule_save([spec])
    scheduler = Scheduler(ticking, 0.2)
    scheduler.start()
    after = ticking.backend.now()
    try:
        assert scheduler.wait_for_runs(1, timeout=15)
    finally:
        scheduler.stop()
    ticks = sorted(_tick(job) for job in ticking.jobs(task="tick", limit=100))
    if missed == "latest":
        (latest,) = [t for t in ticks if t <= after]
        assert latest >= math.floor(before), f"the latest missed tick runs, not an older one: {ticks}"
    else:
        assert [t for t in ticks if t <= before] == []
    assert _record(ticking, "tick").next_run_at > before


def test_workers_started_without_schedules_leave_them_alone(ticking: conveyor.App) -> None:
    with running_worker(ticking, schedules=False) as worker:
        assert worker.scheduler is None
        assert all(s.name != "scheduler" for s in worker.services)


# -- retention ---------------------------------------------------------------------------------
def test_pruner_deletes_old_finished_jobs_with_their_attempts_and_keeps_failed(app: conveyor.App) -> None:
    @app.task(max_attempts=1)
    def work(ok: bool) -> None:
        if not ok:
            raise ValueError("no")

    done = [work.enqueue(True) for _ in range(5)]
    failed = work.enqueue(False)
    cancelled = work.enqueue(True)
    cancelled.cancel()
    conveyor.Worker(app, install_signal_handlers=False).process_batch(100)
    assert all(job.refresh().state == "completed" for job in done) and failed.refresh().state == "failed"
    finished = max(job.refresh().finished_at.timestamp() for job in [*done, failed, cancelled])  # type: ignore[union-attr]
    wait_for(lambda: app.backend.now() > finished + 0.05)
    pruner = Pruner(app.backend, {"completed": 0.01, "cancelled": 0.01, "failed": None}, 60, batch_size=2)
    pruner.run_once()
    assert pruner.pruned == 6
    assert all(app.backend.get(job.id) is None for job in [*done, cancelled])
    assert app.backend.audits(done[0].id) == []
    assert failed.refresh().state == "failed" and failed.attempts
    kept = work.enqueue(True)
    conveyor.Worker(app, install_signal_handlers=False).process_batch(10)
    Pruner(app.backend, {"completed": 3600.0}, 60).run_once()
    assert kept.refresh().state == "completed", "a job younger than its retention stays"


# -- failure alerts ------------------------------------------------------------------------------
def _fail_jobs(app: conveyor.App, n: int, queue: str = "default") -> list[str]:
    @app.task(max_attempts=1, queue=queue, name=f"boom_{queue}")
    def boom() -> None:
        raise RuntimeError("boom")

    jobs = [boom.enqueue() for _ in range(n)]
    conveyor.Worker(app, queues=[queue], install_signal_handlers=False).process_batch(100)
    return [job.id for job in jobs]


def test_failures_since_counts_recent_failures_by_queue(app: conveyor.App) -> None:
    before = app.backend.now() - 0.5
    ids = _fail_jobs(app, 3)
    _fail_jobs(app, 2, queue="other")
    everywhere = app.backend.failures_since(before)
    assert everywhere.count == 5
    one_queue = app.backend.failures_since(before, "default", limit=2)
    assert one_queue.count == 3 and len(one_queue.job_ids) == 2 and set(one_queue.job_ids) <= set(ids)
    assert app.backend.failures_since(app.backend.now() + 60).count == 0


def test_alert_fires_at_most_once_per_window(app: conveyor.App) -> None:
    backend = app.backend
    backend.alert_save([AlertSpec("ops", "http://127.0.0.1:9/hook", 2, 60.0, None)])
    backend.alert_save([AlertSpec("ops", "http://127.0.0.1:9/hook", 3, 60.0, None)])
    (record,) = backend.alert_list()
    assert record.spec.threshold == 3 and record.last_fired_at is None
    (job,) = app.prepare([{"task": "conveyor.http", "kwargs": {"url": "http://127.0.0.1:9/hook"}}])
    (job2,) = app.prepare([{"task": "conveyor.http", "kwargs": {"url": "http://127.0.0.1:9/hook"}}])
    assert backend.alert_fire([AlertFiring("ops", 1000.0, 940.0, job)]) == [True]
    assert backend.alert_fire([AlertFiring("ops", 1030.0, 970.0, job2)]) == [False]
    assert backend.get(job2.id) is None and backend.get(job.id) is not None
    assert backend.alert_list()[0].last_fired_at == 1000.0
    (job3,) = app.prepare([{"task": "conveyor.http", "kwargs": {"url": "http://127.0.0.1:9/hook"}}])
    assert backend.alert_fire([AlertFiring("ops", 1060.0, 1000.0, job3)]) == [True], "a new window"
    assert backend.alert_delete(["ops", "nope"]) == 1 and backend.alert_list() == []


def test_alerters_of_several_workers_store_one_notification(app: conveyor.App, backend_url: str) -> None:
    ids = _fail_jobs(app, 3)
    app.alert("ops", url="http://127.0.0.1:9/hook", threshold=3, window="5m")
    others = [conveyor.App(backend_url) for _ in range(3)]
    alerters = [Alerter(other, 60) for other in others]
    try:
        for alerter in alerters:
            alerter.run_once()
        for alerter in alerters:
            alerter.run_once()
    finally:
        for other in others:
            other.close()
    assert sum(a.fired for a in alerters) == 1
    (note,) = app.jobs(task="conveyor.http").items
    body = note.kwargs["json"]
    assert note.kwargs["url"] == "http://127.0.0.1:9/hook"
    assert body["alert"] == "ops" and body["failed"] == 3 and body["window"] == "5m" and body["queue"] is None
    assert set(body["job_ids"]) == set(ids) and "3 job(s) failed" in body["text"]
    assert app.alerts()[0]["last_fired_at"] is not None


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "tick", "cron": "61 * * * *"}, "invalid cron expression '61 \\* \\* \\* \\*'"),
        ({"task": "tick", "cron": "0 2 * * *", "tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"task": "nope", "every": 5}, "unknown task 'nope'"),
        ({"task": "tick", "every": -1}, "every must be from 1"),
        ({"task": "tick"}, "exactly one of cron"),
        ({"task": "tick", "every": 5, "missed": "all"}, "missed must be 'latest' or 'skip'"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_stored(
    ticking: conveyor.App, options: dict[str, Any], message: str
) -> None:
    with pytest.raises((conveyor.InvalidSchedule, conveyor.UnknownTask), match=message):
        ticking.schedule("bad", **options)
    assert ticking.schedules() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://x/", "threshold": 1, "window": -60}, "window must be more than 0"),
        ({"url": "http://x/", "threshold": 1, "window": "soon"}, "invalid duration 'soon'"),
        ({"url": "ftp://x/", "threshold": 1, "window": "5m"}, "url must be an absolute http"),
        ({"url": "http://x/", "threshold": 0, "window": "5m"}, "threshold must be an int"),
    ],
)
def test_bad_alerts_are_refused_and_nothing_is_stored(
    app: conveyor.App, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(conveyor.InvalidAlert, match=message):
        app.alert("ops", **options)
    assert app.alerts() == []


def test_schedule_listing_shape(ticking: conveyor.App) -> None:
    ticking.schedule(
        "nightly", task="tick", cron="0 2 * * *", tz="Europe/Berlin", kwargs={"n": 1}, queue="reports"
    )
    (shown,) = ticking.schedules()
    assert set(shown) == {
        "name", "task", "cron", "tz", "args", "kwargs", "queue", "missed", "paused",
        "next_run_at", "last_run_at", "last_job_id",
    }  # fmt: skip
    assert shown["cron"] == "0 2 * * *" and shown["tz"] == "Europe/Berlin" and shown["queue"] == "reports"
    assert shown["kwargs"] == {"n": 1} and shown["last_run_at"] is None
    json.dumps(shown)
    ticking.unschedule("nightly")
    assert ticking.schedules() == []
    with pytest.raises(conveyor.ScheduleNotFound):
        ticking.unschedule("nightly")
