"""Running jobs: results, retries, backoff, permanent errors, timeouts, async tasks."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import conveyor
from conveyor.backoff import fixed
from conveyor.testing.helpers import final_state, running_worker, wait_for


def test_completed_job_keeps_its_result_and_an_attempt_record(app: conveyor.App) -> None:
    @app.task()
    def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    job = add.enqueue(2, 3)
    result = conveyor.Worker(app, install_signal_handlers=False).process_batch(10)
    assert result.to_dict() == {"processed": 1, "completed": 1, "failed": 0, "retried": 0, "cancelled": 0}
    assert job.result(timeout=5) == {"sum": 5}
    record = app.get(job.id)
    assert record.state == "completed" and record.attempt == 1 and record.finished_at is not None
    (attempt,) = record.attempts
    assert attempt.outcome == "completed" and attempt.attempt == 1 and attempt.worker
    assert attempt.started_at is not None and attempt.finished_at is not None
    assert attempt.started_at <= attempt.finished_at


def test_async_task_runs_on_the_event_loop(app: conveyor.App) -> None:
    @app.task()
    async def fetch(n: int) -> int:
        await asyncio.sleep(0.01)
        return n * 2

    jobs = [fetch.enqueue(i) for i in range(20)]
    with running_worker(app, concurrency=20):
        assert [j.result(timeout=10) for j in jobs] == [i * 2 for i in range(20)]


def test_transient_failure_retries_then_completes(app: conveyor.App) -> None:
    calls: list[int] = []

    @app.task(max_attempts=4, backoff=fixed(0))
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("host down")
        return "ok"

    job = flaky.enqueue()
    with running_worker(app):
        assert job.result(timeout=10) == "ok"
    record = app.get(job.id)
    assert record.attempt == 3
    assert [a.outcome for a in record.attempts] == ["retry", "retry", "completed"]
    assert "ConnectionError: host down" in (record.attempts[0].error or "")


def test_retry_state_waits_for_the_backoff(app: conveyor.App) -> None:
    @app.task(max_attempts=2, backoff=fixed(0.8))
    def flaky() -> None:
        raise ConnectionError("later")

    job = flaky.enqueue()
    worker = conveyor.Worker(app, install_signal_handlers=False)
    assert worker.process_batch(5).retried == 1
    record = app.get(job.id)
    assert record.state == "retry" and record.error == "ConnectionError: later"
    assert worker.process_batch(5).processed == 0, "not due yet"
    time.sleep(0.9)
    assert worker.process_batch(5).failed == 1
    assert job.refresh().state == "failed"


def test_exhausted_attempts_go_to_the_failure_table_with_traceback(app: conveyor.App) -> None:
    @app.task(max_attempts=3, backoff=fixed(0))
    def broken(x: int) -> None:
        raise ValueError(f"bad value {x}")

    job = broken.enqueue(7)
    with running_worker(app):
        assert final_state(job) == "failed"
    record = app.get(job.id)
    assert record.attempt == 3 and record.error == "ValueError: bad value 7"
    assert record.traceback and "raise ValueError" in record.traceback
    assert record.finished_at is not None and record.args == [7]
    assert [a.outcome for a in record.attempts] == ["retry", "retry", "failed"]
    with pytest.raises(conveyor.JobFailed, match="bad value 7") as info:
        job.result(timeout=1)
    assert info.value.traceback and "ValueError" in info.value.traceback
    assert [j.id for j in app.jobs(status="failed").items] == [job.id]


def test_permanent_skips_remaining_attempts(app: conveyor.App) -> None:
    @app.task(max_attempts=5)
    def refuse() -> None:
        raise conveyor.Permanent("account closed")

    job = refuse.enqueue()
    conveyor.Worker(app, install_signal_handlers=False).process_batch(5)
    record = app.get(job.id)
    assert record.state == "failed" and record.attempt == 1
    assert "account closed" in (record.error or "")


def test_permanent_on_and_retry_on_classify_errors(app: conveyor.App) -> None:
    @app.task(max_attempts=5, backoff=fixed(0), permanent_on=KeyError)
    def p() -> None:
        raise KeyError("missing")

    # A retry not due within this batch: with no delay, process_batch may run it again at once.
    @app.task(max_attempts=5, backoff=fixed(60), retry_on=(ConnectionError,))
    def r(kind: str) -> None:
        raise ConnectionError("x") if kind == "conn" else TypeError("y")

    jp, jr_other, jr_conn = p.enqueue(), r.enqueue("type"), r.enqueue("conn")
    worker = conveyor.Worker(app, install_signal_handlers=False)
    worker.process_batch(10)
    assert app.get(jp.id).state == "failed" and app.get(jp.id).attempt == 1
    assert app.get(jr_other.id).state == "failed" and app.get(jr_other.id).attempt == 1
    assert app.get(jr_conn.id).state == "retry" and app.get(jr_conn.id).attempt == 1


def test_retry_after_sets_the_delay_and_counts_the_attempt(app: conveyor.App) -> None:
    seen: list[float] = []

    @app.task(max_attempts=3)
    def rate_limited() -> str:
        seen.append(time.monotonic())
        if len(seen) == 1:
            raise conveyor.RetryAfter(0.5)
        return "ok"

    job = rate_limited.enqueue()
    with running_worker(app):
        assert job.result(timeout=10) == "ok"
    assert seen[1] - seen[0] >= 0.45
    record = app.get(job.id)
    assert record.attempt == 2 and record.attempts[0].outcome == "retry"


def test_sync_timeout_is_a_transient_failure_and_keeps_concurrency(app: conveyor.App) -> None:
    release = threading.Event()

    @app.task(timeout=0.3, max_attempts=2, backoff=fixed(0))
    def stuck() -> None:
        release.wait(30)  # ignores the interruption only while blocked in C; wakes below
        time.sleep(30)

    @app.task()
    def quick(n: int) -> int:
        return n

    job = stuck.enqueue()
    with running_worker(app, concurrency=1):
        assert final_state(job, timeout=10) == "failed"
        record = app.get(job.id)
        assert [a.outcome for a in record.attempts] == ["retry", "failed"]
        assert "timed out after 0.3s" in (record.error or "")
        # The stuck threads still hold their C call, yet the worker's one slot is free.
        assert quick.enqueue(5).result(timeout=5) == 5
        release.set()


def test_async_timeout_cancels_the_coroutine(app: conveyor.App) -> None:
    cancelled = threading.Event()

    @app.task(timeout=0.2, max_attempts=1)
    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = slow.enqueue()
    with running_worker(app):
        assert final_state(job) == "failed"
    assert cancelled.is_set()
    assert "timed out" in (app.get(job.id).error or "")


def test_return_value_that_is_not_json_fails_the_job_clearly(app: conveyor.App) -> None:
    @app.task(max_attempts=3)
    def bad() -> object:
        return object()

    job = bad.enqueue()
    conveyor.Worker(app, install_signal_handlers=False).process_batch(5)
    record = app.get(job.id)
    assert record.state == "failed" and "not JSON" in (record.error or "")


def test_result_timeout_raises_timeout_error(app: conveyor.App) -> None:
    @app.task()
    def never_run() -> None: ...

    job = never_run.enqueue()
    with pytest.raises(TimeoutError, match="pending"):
        job.result(timeout=0.2)


def test_current_job_is_visible_inside_a_task(app: conveyor.App) -> None:
    seen: dict[str, object] = {}

    @app.task(queue="q")
    def who() -> None:
        ctx = conveyor.current_job()
        seen.update(id=ctx.id, attempt=ctx.attempt, queue=ctx.queue, cancel=ctx.cancel_requested)

    job = who.enqueue()
    conveyor.Worker(app, install_signal_handlers=False).process_batch(1)
    assert seen == {"id": job.id, "attempt": 1, "queue": "q", "cancel": False}
    with pytest.raises(RuntimeError):
        conveyor.current_job()


def test_many_jobs_all_complete_exactly_once(app: conveyor.App) -> None:
    counts: dict[int, int] = {}
    lock = threading.Lock()

    @app.task()
    def record(n: int) -> None:
        with lock:
            counts[n] = counts.get(n, 0) + 1

    app.enqueue_many([{"task": "record", "args": [i]} for i in range(500)])
    with running_worker(app, concurrency=8):
        wait_for(lambda: app.stats()["counts"]["completed"] == 500, timeout=30)
    assert counts == dict.fromkeys(range(500), 1)


def test_sync_and_async_jobs_together_never_exceed_the_concurrency(app: conveyor.App) -> None:
    lock = threading.Lock()
    running = {"now": 0, "peak": 0}

    def enter() -> None:
        with lock:
            running["now"] += 1
            running["peak"] = max(running["peak"], running["now"])

    def leave() -> None:
        with lock:
            running["now"] -= 1

    @app.task()
    async def io_async() -> None:
        enter()
        await asyncio.sleep(0.02)
        leave()

    @app.task()
    def io_sync() -> None:
        enter()
        time.sleep(0.02)
        leave()

    app.enqueue_many([{"task": "io_async"}, {"task": "io_sync"}] * 40)
    conveyor.Worker(app, concurrency=3, prefetch=10, install_signal_handlers=False).run(burst=True)
    assert app.stats()["counts"]["completed"] == 80
    assert running["peak"] == 3, running
