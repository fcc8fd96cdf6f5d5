"""Observability in the backend: the live worker registry, progress, stored trace context (every backend)."""

from __future__ import annotations

import time

import conveyor
from conveyor.backends.base import ClaimRequest, NewJob, Outcome, ProgressUpdate, WorkerBeat
from conveyor.ids import new_job_id
from conveyor.testing.helpers import wait_for

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def beat(worker_id: str, running: tuple[str, ...] = (), started_at: float = 1_700_000_000.0) -> WorkerBeat:
    return WorkerBeat(
        id=worker_id,
        host="host-a",
        pid=4242,
        queues=("default", "emails"),
        concurrency=5,
        running=running,
        started_at=started_at,
        version="1.2.3",
    )


def test_registry_lists_beating_workers_with_every_field(app: conveyor.App) -> None:
    backend = app.backend
    assert backend.workers_live() == []
    backend.workers_beat([beat("w-1", ("job-1", "job-2")), beat("w-2", started_at=1_700_000_001.0)], 30)
    before = backend.now()
    listed = backend.workers_live()
    assert [r.beat.id for r in listed] == ["w-1", "w-2"], "oldest first"
    first = listed[0].to_dict()
    assert first["host"] == "host-a" and first["pid"] == 4242
    assert first["queues"] == ["default", "emails"] and first["concurrency"] == 5
    assert first["running"] == ["job-1", "job-2"] and first["version"] == "1.2.3"
    assert first["started_at"].startswith("2023-11-14T22:13:20")
    assert abs(listed[0].last_seen_at - before) < 5
    # A renewal replaces what the worker said about itself.
    backend.workers_beat([beat("w-1", ())], 30)
    assert [r.beat.running for r in backend.workers_live()] == [(), ()]


def test_registry_drops_a_removed_worker_at_once_and_an_expired_one_after_its_ttl(app: conveyor.App) -> None:
    backend = app.backend
    backend.workers_beat([beat("stays")], 30)
    backend.workers_beat([beat("removed"), beat("expires")], 0.3)
    backend.workers_remove(["removed"])
    assert {r.beat.id for r in backend.workers_live()} == {"stays", "expires"}
    wait_for(lambda: {r.beat.id for r in backend.workers_live()} == {"stays"}, timeout=5)
    backend.workers_remove(["stays", "never-registered"])
    assert backend.workers_live() == []


def test_progress_is_stored_while_the_lease_holds_and_cleared_by_resubmit(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    job = work.enqueue()
    assert app.get(job.id).progress is None
    (claimed,) = app.backend.claim(ClaimRequest(("default",), 1, 30, "w"))
    app.backend.jobs_progress([ProgressUpdate(job.id, claimed.lease_token, 0.4, "40 of 100 rows")])
    progress = app.get(job.id).progress
    assert progress is not None
    assert progress["fraction"] == 0.4 and progress["message"] == "40 of 100 rows"
    assert progress["updated_at"] is not None
    assert app.get(job.id).to_dict()["progress"] == progress
    # A stale lease writes nothing (the same fence as every write after a claim).
    app.backend.jobs_progress([ProgressUpdate(job.id, "not-the-token", 0.9, "stale")])
    assert app.get(job.id).progress["message"] == "40 of 100 rows"  # type: ignore[index]
    app.backend.jobs_progress([ProgressUpdate(job.id, claimed.lease_token, None, None)])
    cleared = app.get(job.id).progress
    assert cleared is not None and cleared["fraction"] is None and cleared["message"] is None
    outcome = Outcome(job.id, claimed.lease_token, "failed", 1, "w", time.time(), time.time(), error="boom")
    assert app.backend.finish_many([outcome]) == [True]
    app.resubmit(job.id)
    assert app.get(job.id).progress is None


def test_trace_context_travels_from_enqueue_to_claim_and_trace_ids_reach_the_failure_table(
    app: conveyor.App,
) -> None:
    @app.task(max_attempts=2)
    def work() -> None: ...

    plain, keyed = (
        NewJob(new_job_id(), "work", "default", '{"args":[],"kwargs":{}}', 2, trace_context=TRACEPARENT),
        NewJob(
            new_job_id(),
            "work",
            "default",
            '{"args":[],"kwargs":{}}',
            2,
            key="k1",
            trace_context=TRACEPARENT,
        ),
    )
    app.backend.enqueue_many([plain])
    app.backend.enqueue_many([keyed])
    untraced = work.enqueue()
    claimed = {c.id: c for c in app.backend.claim(ClaimRequest(("default",), 10, 30, "w"))}
    assert claimed[plain.id].trace_context == TRACEPARENT
    assert claimed[keyed.id].trace_context == TRACEPARENT
    assert claimed[untraced.id].trace_context is None
    trace_id = TRACEPARENT[3:35]
    now = time.time()
    outcomes = [
        Outcome(
            plain.id, claimed[plain.id].lease_token, "failed", 1, "w", now, now, error="E", trace_id=trace_id
        ),
        Outcome(keyed.id, claimed[keyed.id].lease_token, "completed", 1, "w", now, now, result="1"),
        Outcome(untraced.id, claimed[untraced.id].lease_token, "completed", 1, "w", now, now, result="1"),
    ]
    assert app.backend.finish_many(outcomes) == [True, True, True]
    failed = app.get(plain.id)
    assert failed.state == "failed" and failed.trace_id == trace_id
    assert failed.attempts[-1].trace_id == trace_id
    assert failed.to_dict()["trace_id"] == trace_id
    assert failed.to_dict()["attempts"][-1]["trace_id"] == trace_id
    assert app.get(keyed.id).trace_id == trace_id
    assert app.get(keyed.id).attempts[-1].trace_id is None
    assert app.get(untraced.id).trace_id is None
    assert app.get(untraced.id).to_dict()["trace_id"] is None
    (newest,) = app.backend.audits(plain.id, limit=1)
    assert newest.trace_id == trace_id


def test_queue_gauges_count_by_queue_and_state_with_each_queue_oldest_pending_age(app: conveyor.App) -> None:
    @app.task(queue="mail")
    def send() -> None: ...

    @app.task(queue="batch")
    def crunch() -> None: ...

    assert app.backend.queue_gauges().queues == {}
    send.enqueue()
    send.enqueue()
    send.options(delay=3600).enqueue()  # not due: waits, but is not late
    crunch.enqueue()
    time.sleep(0.05)
    (claimed,) = app.backend.claim(ClaimRequest(("batch",), 1, 30, "w"))
    now = time.time()
    done = Outcome(claimed.id, claimed.lease_token, "completed", 1, "w", now, now, result="null")
    assert app.backend.finish_many([done]) == [True]
    gauges = app.backend.queue_gauges()
    assert set(gauges.queues) == {"mail", "batch"}
    mail, batch = gauges.queues["mail"], gauges.queues["batch"]
    assert mail.counts == {
        "pending": 3,
        "processing": 0,
        "retry": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert batch.counts["completed"] == 1 and sum(batch.counts.values()) == 1
    assert mail.oldest_pending_age_s is not None and 0.04 <= mail.oldest_pending_age_s < 60
    assert batch.oldest_pending_age_s is None, "nothing of batch waits"
    assert not gauges.estimated, "a small store is counted exactly"
