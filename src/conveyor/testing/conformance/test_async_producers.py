"""The awaited producer API: the same contract as the sync one, and an event loop that never stalls.

Each test drives its coroutine with ``asyncio.run`` (no pytest plugin needed) and
closes the App's async side for that loop before the loop ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import conveyor
from conveyor.backends.base import ClaimRequest
from conveyor.testing.helpers import running_worker


def run(app: conveyor.App, body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body`` on a fresh event loop, closing the App's async side on that loop afterwards."""

    async def main() -> Any:
        try:
            return await body()
        finally:
            await app.aclose()

    return asyncio.run(main())


class Ticker:
    """A coroutine ticking every 10 ms; ``max_gap`` is the longest the loop kept it waiting."""

    def __init__(self) -> None:
        self.ticks = 0
        self.max_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            self.ticks += 1
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


#: A stalled loop is one whose 10 ms ticker waited this long: generous for a busy 2-core
#: machine, far below what a blocking producer shows (it stalls for the whole wait or burst).
MAX_TICK_GAP = 0.5


def test_aenqueue_stores_the_same_job_as_enqueue(app: conveyor.App) -> None:
    @app.task(queue="emails", max_attempts=5, priority=3)
    def send_email(to: str, subject: str) -> None: ...

    async def body() -> None:
        job = await send_email.aenqueue("a@example.com", subject="Welcome")
        assert isinstance(job, conveyor.Job) and job.state == "pending"
        stored = await app.aget(job.id)
        assert stored == job and stored.task == "send_email" and stored.queue == "emails"
        assert stored.args == ["a@example.com"] and stored.kwargs == {"subject": "Welcome"}
        assert (stored.priority, stored.max_attempts, stored.attempt) == (3, 5, 0)
        by_name = await app.aenqueue("send_email", args=["b", "hi"], queue="other", priority=7)
        assert ((await app.aget(by_name.id)).queue, (await by_name.arefresh()).priority) == ("other", 7)
        bound = await send_email.options(queue="q2").options(priority=1).aenqueue("c", "hi")
        assert (bound.queue, bound.priority) == ("q2", 1)
        with pytest.raises(conveyor.JobNotFound):
            await app.aget("no-such-job")

    run(app, body)
    assert app.stats()["counts"]["pending"] == 3


def test_aenqueue_many_stores_all_in_order_and_refuses_bad_items(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    async def body() -> list[conveyor.Job]:
        with pytest.raises(conveyor.UnknownTask, match="nope"):
            await app.aenqueue_many([{"task": "work", "args": [1]}, {"task": "nope"}])
        with pytest.raises(conveyor.InvalidPayload):
            await app.aenqueue("work", args=[object()])
        assert await app.aenqueue_many([]) == []
        return await app.aenqueue_many([{"task": "work", "args": [i]} for i in range(300)])

    jobs = run(app, body)
    assert len(jobs) == 300 and len({j.id for j in jobs}) == 300
    claimed = app.backend.claim(ClaimRequest(("default",), 300, 30.0, "test-worker"))
    assert [j.id for j in claimed] == [j.id for j in jobs], "FIFO, and nothing from the refused batch"


def test_aenqueue_keys_and_delays(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    async def body() -> None:
        first = await work.options(key="k1").aenqueue(1)
        again = await work.options(key="k1").aenqueue(2)
        assert again.id == first.id
        batch = await app.aenqueue_many([{"task": "work", "args": [3], "key": "k1"}])
        assert batch[0].id == first.id
        delayed = await work.options(delay=60).aenqueue(4)
        stored = await app.aget(delayed.id)
        assert stored.state == "pending"
        assert (stored.run_at - stored.created_at).total_seconds() == pytest.approx(60, abs=5)

    run(app, body)
    claimed = app.backend.claim(ClaimRequest(("default",), 10, 30.0, "test-worker"))
    assert len(claimed) == 1, "the keyed job once; the delayed job is not due"


def test_aresult_returns_the_value_and_raises_job_failed(app: conveyor.App) -> None:
    @app.task()
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(max_attempts=1)
    def broken() -> None:
        raise ValueError("bad input 42")

    async def body() -> None:
        ok = await add.aenqueue(2, 3)
        bad = await broken.aenqueue()
        assert await ok.aresult(timeout=20) == 5
        with pytest.raises(conveyor.JobFailed, match="bad input 42") as failed:
            await bad.aresult(timeout=20)
        assert "ValueError" in (failed.value.traceback or "")
        assert ok.state == "completed" and bad.state == "failed"

    with running_worker(app):
        run(app, body)


def test_aresult_times_out_on_an_unfinished_job(app: conveyor.App) -> None:
    @app.task()
    def never_run() -> None: ...

    async def body() -> float:
        job = await never_run.aenqueue()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=job.id):
            await job.aresult(timeout=0.3)
        return time.monotonic() - started

    assert 0.3 <= run(app, body) < 5.0


def test_admin_operations_awaited(app: conveyor.App) -> None:
    @app.task(max_attempts=1)
    def flaky(n: int) -> None:
        raise RuntimeError("down")

    async def body() -> None:
        waiting = await flaky.aenqueue(1)
        cancelled = await waiting.acancel()
        assert cancelled.state == "cancelled" and waiting.state == "cancelled"
        again = await app.aresubmit(waiting.id, args=[2])
        assert again.state == "pending" and again.args == [2]
        other = await flaky.aenqueue(3)
        assert (await app.acancel(other.id)).state == "cancelled"
        page = await app.ajobs(status="cancelled")
        assert [j.id for j in page] == [other.id] and page.total == 1
        assert (await app.astats())["counts"]["cancelled"] == 1
        await app.adelete(other.id)
        with pytest.raises(conveyor.JobNotFound):
            await app.aget(other.id)
        with pytest.raises(conveyor.InvalidState):
            await app.aresubmit(waiting.id)

    run(app, body)


def test_aresult_does_not_block_the_event_loop(app: conveyor.App) -> None:
    @app.task()
    def slow() -> str:
        time.sleep(1.0)
        return "done"

    async def body() -> tuple[Any, Ticker]:
        job = await slow.aenqueue()
        with Ticker() as ticker:
            value = await job.aresult(timeout=30)
        return value, ticker

    with running_worker(app):
        value, ticker = run(app, body)
    assert value == "done"
    assert ticker.ticks >= 20, f"the ticker ticked {ticker.ticks} times in a 1 s wait"
    assert ticker.max_gap < MAX_TICK_GAP, f"the loop stalled for {ticker.max_gap:.3f}s"


def test_a_thousand_concurrent_aenqueues_do_not_block_the_event_loop(app: conveyor.App) -> None:
    @app.task()
    def work(n: int) -> None: ...

    async def body() -> tuple[list[conveyor.Job], Ticker]:
        with Ticker() as ticker:
            jobs = await asyncio.gather(*(work.aenqueue(i) for i in range(1000)))
            await asyncio.sleep(0.05)  # at least a few ticks, however fast the burst was
        return jobs, ticker

    jobs, ticker = run(app, body)
    assert len({j.id for j in jobs}) == 1000
    assert app.stats()["counts"]["pending"] == 1000
    assert ticker.max_gap < MAX_TICK_GAP, f"the loop stalled for {ticker.max_gap:.3f}s"
