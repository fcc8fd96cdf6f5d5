"""Enqueue: records, validation, idempotency keys, ordering and delays (every backend)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

import conveyor
from conveyor.backends.base import ClaimRequest


def claim(app: conveyor.App, limit: int = 10, queues: tuple[str, ...] = ("default",)) -> list[str]:
    return [j.id for j in app.backend.claim(ClaimRequest(queues, limit, 30.0, "test-worker"))]


def test_enqueue_stores_a_pending_job_with_every_field(app: conveyor.App) -> None:
    @app.task(queue="emails", max_attempts=5, priority=3)
    def send_email(to: str, subject: str) -> None: ...

    job = send_email.enqueue("a@example.com", subject="Welcome")
    assert isinstance(job, conveyor.Job) and job.state == "pending"
    record = app.get(job.id)
    assert record.task == "send_email" and record.queue == "emails"
    assert record.args == ["a@example.com"] and record.kwargs == {"subject": "Welcome"}
    assert record.state == "pending" and record.attempt == 0 and record.max_attempts == 5
    assert record.priority == 3 and record.key is None and record.attempts == []
    assert record.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert record.to_dict()["status"] == "pending"


def test_enqueue_by_name_and_options(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> int:
        return n

    job = app.enqueue("work", args=[1], queue="other", priority=7, max_attempts=2)
    record = app.get(job.id)
    assert (record.queue, record.priority, record.max_attempts) == ("other", 7, 2)
    bound = work.options(queue="q2").options(priority=1).enqueue(2)
    assert (app.get(bound.id).queue, app.get(bound.id).priority) == ("q2", 1)


def test_enqueue_many_stores_all_in_order(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    jobs = app.enqueue_many([{"task": "work", "args": [i]} for i in range(300)])
    assert len(jobs) == 300 and len({j.id for j in jobs}) == 300
    assert app.stats()["counts"]["pending"] == 300
    claimed = claim(app, 300)
    assert claimed == [j.id for j in jobs], "FIFO within equal priority"


def test_unknown_task_is_refused_and_nothing_stored(app: conveyor.App) -> None:
    with pytest.raises(conveyor.UnknownTask, match="nope"):
        app.enqueue("nope")
    with pytest.raises(conveyor.UnknownTask):
        app.enqueue_many([{"task": "nope"}])
    assert app.stats()["counts"]["pending"] == 0


def test_declared_task_can_be_enqueued(app: conveyor.App) -> None:
    send = app.declare("send_email", queue="emails")
    job = send.enqueue("x")
    assert app.get(job.id).queue == "emails"


def test_duplicate_task_names_are_an_error(app: conveyor.App) -> None:
    @app.task(name="same")
    def one() -> None: ...

    with pytest.raises(conveyor.DuplicateTask, match="same"):

        @app.task(name="same")
        def two() -> None: ...


def test_non_json_arguments_are_refused_at_enqueue(app: conveyor.App) -> None:
    @app.task()
    def work(x: object) -> None: ...

    work.enqueue(1)
    for bad in (object(), {1, 2}, float("nan"), b"bytes"):
        with pytest.raises(conveyor.InvalidPayload, match="JSON"):
            work.enqueue(bad)
    with pytest.raises(conveyor.InvalidPayload):
        app.enqueue_many([{"task": "work", "args": [1]}, {"task": "work", "args": [object()]}])
    assert app.stats()["counts"]["pending"] == 1, "a bad batch stores nothing"


def test_oversized_payload_is_refused(backend_url: str) -> None:
    app = conveyor.App(backend_url, max_payload_bytes=1000)

    @app.task()
    def work(x: str) -> None: ...

    work.enqueue("a" * 900)
    with pytest.raises(conveyor.PayloadTooLarge, match="1,000"):
        work.enqueue("a" * 1000)
    with pytest.raises(conveyor.PayloadTooLarge):
        work.enqueue("é" * 600)  # 1,200 bytes in UTF-8
    assert app.stats()["counts"]["pending"] == 1
    app.close()


def test_default_payload_limit_is_one_mebibyte(app: conveyor.App) -> None:
    @app.task()
    def work(x: str) -> None: ...

    work.enqueue("a" * (1024 * 1024 - 100))
    with pytest.raises(conveyor.PayloadTooLarge):
        work.enqueue("a" * (1024 * 1024))


@pytest.mark.parametrize("name", ["", "has space", "semi;colon", "quote'", "a" * 129, "ünï", "x\ny"])
def test_invalid_queue_and_task_names_are_refused(app: conveyor.App, name: str) -> None:
    @app.task()
    def work() -> None: ...

    with pytest.raises(conveyor.InvalidName):
        work.options(queue=name).enqueue()
    with pytest.raises(conveyor.InvalidName):
        app.task(name=name)(lambda: None)
    assert app.stats()["counts"]["pending"] == 0


def test_priority_then_run_at_then_fifo(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    low = work.enqueue(1)
    high = work.options(priority=10).enqueue(2)
    low2 = work.enqueue(3)
    mid = work.options(priority=5).enqueue(4)
    past = work.options(run_at=datetime.now(UTC) - timedelta(hours=1)).enqueue(5)
    assert claim(app) == [high.id, mid.id, past.id, low.id, low2.id]


def test_delayed_job_is_not_claimed_before_it_is_due(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    later = work.options(delay=0.6).enqueue()
    by_time = work.options(run_at=time.time() + 3600).enqueue()
    assert app.get(later.id).run_at > datetime.now(UTC)
    assert claim(app) == []
    time.sleep(0.7)
    assert claim(app) == [later.id]
    assert app.get(by_time.id).state == "pending"


def test_named_queues_are_isolated(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    a = work.options(queue="a").enqueue()
    b = work.options(queue="b").enqueue()
    assert claim(app, queues=("b",)) == [b.id]
    assert claim(app, queues=("a", "b")) == [a.id]


def test_key_keeps_the_live_job(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    first = work.options(key="k1").enqueue(1)
    second = work.options(key="k1").enqueue(2)
    assert second.id == first.id
    assert app.get(first.id).args == [1]
    other = work.options(key="k2").enqueue(3)
    assert other.id != first.id
    claim(app, 1)  # first is now processing: still absorbs duplicates
    assert work.options(key="k1").enqueue(4).id == first.id
    assert app.stats()["counts"]["pending"] + app.stats()["counts"]["processing"] == 2


def test_key_replace_mode_updates_the_waiting_job(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    first = work.options(key="k").enqueue(1)
    again = work.options(key="k", key_mode="replace").enqueue(2)
    assert again.id == first.id
    assert app.get(first.id).args == [2]
    jobs = app.enqueue_many([{"task": "work", "args": [3], "key": "k", "key_mode": "replace"}])
    assert jobs[0].id == first.id and app.get(first.id).args == [3]


def test_key_of_completed_job_absorbs_late_duplicates_within_retention(backend_url: str) -> None:
    app = conveyor.App(backend_url, key_retention=1.0)

    @app.task()
    def work() -> str:
        return "done"

    job = work.options(key="once").enqueue()
    conveyor.Worker(app, install_signal_handlers=False).process_batch(10)
    assert job.refresh().state == "completed"
    assert work.options(key="once").enqueue().id == job.id
    time.sleep(1.2)
    fresh = work.options(key="once").enqueue()
    assert fresh.id != job.id and fresh.state == "pending"
    app.close()


def test_key_in_enqueue_many_deduplicates_within_the_batch(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    jobs = app.enqueue_many([{"task": "work", "args": [i], "key": "same"} for i in range(3)])
    assert len({j.id for j in jobs}) == 1
    assert app.stats()["counts"]["pending"] == 1


def test_run_at_without_offset_is_utc(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    moment = datetime(2030, 1, 2, 3, 4, 5)
    naive = work.options(run_at=moment).enqueue()
    text = work.options(run_at="2030-01-02T03:04:05").enqueue()
    aware = app.enqueue("work", run_at=moment.replace(tzinfo=UTC).timestamp())
    assert naive.run_at == text.run_at == aware.run_at == moment.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="delay"):
        work.options(delay=-1).enqueue()
    with pytest.raises(ValueError, match="ISO-8601"):
        work.options(run_at="next tuesday").enqueue()
    with pytest.raises(ValueError, match="delay or run_at"):
        work.options(delay=1, run_at=moment).enqueue()
    assert app.stats()["counts"]["pending"] == 3


def test_keyed_job_returns_to_waiting_beside_a_newer_holder(app: conveyor.App) -> None:
    from conveyor.backends.base import Outcome

    @app.task(max_attempts=3)
    def work(n: int) -> None: ...

    first = work.options(key="k").enqueue(1)
    (running,) = app.backend.claim(ClaimRequest(("default",), 1, 30.0, "w"))
    second = work.options(key="k", key_mode="replace").enqueue(2)
    assert second.id != first.id, "the holder runs already: the newest arguments get a job of their own"
    retry = Outcome(first.id, running.lease_token, "retry", 1, "w", time.time(), time.time(), retry_delay=0)
    assert app.backend.finish_many([retry]) == [True]
    assert (app.get(first.id).state, app.get(second.id).state) == ("retry", "pending")
    assert work.options(key="k").enqueue(3).id == second.id, "the newest waiting job answers for the key"
    conveyor.Worker(app, install_signal_handlers=False).process_batch(10)
    assert {app.get(first.id).state, app.get(second.id).state} == {"completed"}
