"""Leases, fencing, the reaper, poison pills, cancellation and release (every backend)."""

from __future__ import annotations

import asyncio
import threading
import time

import conveyor
from conveyor.backends.base import WORKER_LOST, ClaimRequest, Lease, Outcome
from conveyor.testing.helpers import final_state, running_worker


def claim_one(app: conveyor.App, lease: float = 0.3, worker: str = "w1") -> conveyor.backends.base.ClaimedJob:
    (job,) = app.backend.claim(ClaimRequest(("default",), 1, lease, worker))
    return job


def finish(app: conveyor.App, claimed: object, kind: str = "completed", **kw: object) -> bool:
    outcome = Outcome(
        job_id=claimed.id,  # type: ignore[attr-defined]
        lease_token=claimed.lease_token,  # type: ignore[attr-defined]
        kind=kind,  # type: ignore[arg-type]
        attempt=claimed.attempt,  # type: ignore[attr-defined]
        worker="w",
        started_at=time.time(),
        finished_at=time.time(),
        **kw,  # type: ignore[arg-type]
    )
    (applied,) = app.backend.finish_many([outcome])
    return applied


def test_claim_leases_and_counts_the_attempt(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    job = work.enqueue()
    claimed = claim_one(app, lease=30)
    assert claimed.id == job.id and claimed.attempt == 1 and claimed.lease_token
    record = app.get(job.id)
    assert record.state == "processing" and record.worker == "w1"
    assert record.lease_expires_at is not None
    assert app.backend.claim(ClaimRequest(("default",), 5, 30, "w2")) == [], "a leased job is not claimable"


def test_expired_lease_is_reaped_back_to_pending_counting_the_attempt(app: conveyor.App) -> None:
    @app.task(max_attempts=3)
    def work() -> None: ...

    job = work.enqueue()
    claim_one(app, lease=0.2)
    assert app.backend.reap_expired().requeued == 0, "not expired yet"
    time.sleep(0.35)
    result = app.backend.reap_expired()
    assert (result.requeued, result.failed) == (1, 0)
    record = app.get(job.id)
    assert record.state == "pending" and record.attempt == 1
    assert record.attempts[-1].outcome == "lost" and record.attempts[-1].error == WORKER_LOST
    assert claim_one(app).attempt == 2


def test_fencing_a_late_writer_changes_nothing(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    job = work.enqueue()
    stale = claim_one(app, lease=0.2)
    time.sleep(0.35)
    app.backend.reap_expired()
    fresh = claim_one(app, lease=30, worker="w2")
    assert fresh.lease_token != stale.lease_token
    for kind in ("completed", "failed", "retry", "released", "cancelled"):
        assert finish(app, stale, kind, error="late") is False
    renewal = app.backend.extend_leases([Lease(stale.id, stale.lease_token)], 30)
    assert renewal.lost == {stale.id}
    record = app.get(job.id)
    assert record.state == "processing" and record.worker == "w2"
    assert finish(app, fresh, "completed", result='"ok"') is True
    assert app.get(job.id).state == "completed" and app.get(job.id).result(timeout=0) == "ok"


def test_heartbeat_extends_the_lease(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    work.enqueue()
    claimed = claim_one(app, lease=0.4)
    for _ in range(4):
        time.sleep(0.2)
        renewal = app.backend.extend_leases([Lease(claimed.id, claimed.lease_token)], 0.4)
        assert renewal.lost == frozenset()
    assert app.backend.reap_expired().requeued == 0


def test_long_job_survives_many_leases_through_heartbeats(app: conveyor.App) -> None:
    @app.task()
    def long() -> str:
        time.sleep(1.5)
        return "done"

    job = long.enqueue()
    with running_worker(app, lease=0.6):
        assert job.result(timeout=10) == "done"
    assert app.get(job.id).attempt == 1
    assert [a.outcome for a in app.get(job.id).attempts] == ["completed"]


def test_poison_pill_ends_failed_with_worker_lost(app: conveyor.App) -> None:
    @app.task(max_attempts=2)
    def killer() -> None: ...

    job = killer.enqueue()
    for _ in range(2):
        claim_one(app, lease=0.1)
        time.sleep(0.2)
        app.backend.reap_expired()
    record = app.get(job.id)
    assert record.state == "failed" and record.error == WORKER_LOST and record.attempt == 2
    assert [a.outcome for a in record.attempts] == ["lost", "lost"]


def test_released_job_goes_back_without_counting(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    job = work.enqueue()
    claimed = claim_one(app, lease=30)
    assert finish(app, claimed, "released") is True
    record = app.get(job.id)
    assert record.state == "pending" and record.attempt == 0
    assert claim_one(app).attempt == 1


def test_cancel_pending_job_at_once(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    job = work.enqueue()
    job.cancel()
    assert job.state == "cancelled"
    assert app.backend.claim(ClaimRequest(("default",), 5, 30, "w")) == []
    assert app.get(job.id).finished_at is not None
    retry_job = work.enqueue()
    app.cancel(retry_job.id)
    assert app.get(retry_job.id).state == "cancelled"


def test_cancel_of_a_finished_job_is_refused(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    job = work.enqueue()
    conveyor.Worker(app, install_signal_handlers=False).process_batch(1)
    try:
        job.cancel()
    except conveyor.InvalidState as exc:
        assert "completed" in str(exc)
    else:
        raise AssertionError("cancelling a completed job must raise InvalidState")
    twice = work.enqueue()
    twice.cancel()
    try:
        twice.cancel()
    except conveyor.InvalidState as exc:
        assert "cancelled" in str(exc)
    else:
        raise AssertionError("cancelling a cancelled job must raise InvalidState")
    try:
        app.cancel("0" * 32)
    except conveyor.JobNotFound:
        pass
    else:
        raise AssertionError("cancelling an unknown job must raise JobNotFound")


def test_cancel_running_async_job_cancels_it(app: conveyor.App) -> None:
    started = threading.Event()

    @app.task()
    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    job = slow.enqueue()
    with running_worker(app, lease=0.6):
        assert started.wait(10)
        assert app.cancel(job.id).cancel_requested
        assert final_state(job) == "cancelled"
    assert app.get(job.id).attempts[-1].outcome == "cancelled"


def test_cancel_running_sync_job_is_cooperative(app: conveyor.App) -> None:
    started = threading.Event()

    @app.task()
    def polite() -> str:
        started.set()
        ctx = conveyor.current_job()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ctx.raise_if_cancelled()
            time.sleep(0.02)
        return "finished"

    job = polite.enqueue()
    with running_worker(app, lease=0.6):
        assert started.wait(10)
        app.cancel(job.id)
        assert final_state(job) == "cancelled"


def test_worker_reaper_recovers_jobs_of_a_dead_worker(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> int:
        return n

    jobs = [work.enqueue(i) for i in range(5)]
    app.backend.claim(ClaimRequest(("default",), 5, 0.3, "dead-worker"))
    with running_worker(app, reaper_interval=0.1):
        assert [j.result(timeout=10) for j in jobs] == list(range(5))
    assert all(app.get(j.id).attempt == 2 for j in jobs)


def test_graceful_stop_finishes_running_jobs_and_releases_the_rest(app: conveyor.App) -> None:
    started = threading.Semaphore(0)

    @app.task()
    def slowish(n: int) -> int:
        started.release()
        time.sleep(0.3)
        return n

    jobs = [slowish.enqueue(i) for i in range(30)]
    with running_worker(app, concurrency=2, prefetch=4) as worker:
        assert started.acquire(timeout=10) and started.acquire(timeout=10), "both slots busy"
    assert worker.stopping
    states = [app.get(j.id).state for j in jobs]
    assert "processing" not in states
    assert set(states) <= {"completed", "pending"} and states.count("completed") >= 2
    for job in jobs:
        record = app.get(job.id)
        assert record.attempt == (1 if record.state == "completed" else 0)


def test_stop_after_grace_releases_running_jobs(app: conveyor.App) -> None:
    started = threading.Event()

    @app.task()
    def stuck() -> None:
        started.set()
        time.sleep(5)

    job = stuck.enqueue()
    with running_worker(app, grace=0.2):
        assert started.wait(10)
    record = app.get(job.id)
    assert record.state == "pending" and record.attempt == 0
    assert record.attempts[-1].outcome == "released"
