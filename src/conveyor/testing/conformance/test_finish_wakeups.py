"""Finish wake-ups: ``watch_finishes`` and the ``Job.result``/``aresult`` waits built on it.

Every engine lets a waiter learn that a job finished. Engines with wake-ups
(PostgreSQL NOTIFY, Redis PUBLISH, memory's own) make a watch *live*, and then every
way a job reaches a final state (``finish_many``, ``cancel``, the reaper) wakes it,
once per write; SQLite's watches never go live and its waiters poll. The jobs here
are finished through the Backend protocol itself (claim, then ``finish_many``), so
the test decides the moment a job finishes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import conveyor
from conveyor.backends.base import ClaimedJob, ClaimRequest, FinishWatch, Outcome
from conveyor.testing.helpers import wait_for

#: How long a watch may take to go live (a listener connecting on a busy machine).
LIVE_WITHIN = 10.0
#: The longest the old poll waited between reads; a wake-up must come well before it.
OLD_POLL_CAP = 0.1


class Wakes:
    """Counts the wake-ups a watch receives (called from any thread)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.count += 1


@contextmanager
def live_watch(app: conveyor.App, ids: list[str], wake: Callable[[], None]) -> Iterator[FinishWatch]:
    """A watch on ``ids`` once it is live; skips on an engine whose watches never go live."""
    with app.backend.watch_finishes(ids, wake) as watch:
        if not watch.has_wakeups:
            pytest.skip(f"{type(app.backend).__name__} sends no finish wake-ups: its waiters poll")
        deadline = time.monotonic() + LIVE_WITHIN
        while not watch.live and time.monotonic() < deadline:
            time.sleep(0.01)
        if not watch.live:
            raise AssertionError(f"{app.backend!r}: the finish watch did not go live in {LIVE_WITHIN}s")
        yield watch


def claim(app: conveyor.App, n: int) -> list[ClaimedJob]:
    """Enqueue ``n`` jobs of a declared task and lease them all."""
    app.declare("work")
    app.enqueue_many([{"task": "work", "args": [i]} for i in range(n)])
    claimed = app.backend.claim(ClaimRequest(("default",), n, 30.0, "test-worker"))
    assert len(claimed) == n
    return claimed


def outcome(job: ClaimedJob, kind: Any, result: str | None = None) -> Outcome:
    now = time.time()
    return Outcome(job.id, job.lease_token, kind, job.attempt, "test-worker", now, now, result=result)


def test_result_waits_for_a_job_finished_by_another_caller(app: conveyor.App) -> None:
    """Whatever the engine offers (wake-up or poll), result() and aresult() see the finish."""
    [first, second] = claim(app, 2)
    timer = threading.Timer(0.2, app.backend.finish_many, [[outcome(first, "completed", '"one"')]])
    timer.start()
    assert app.get(first.id).result(timeout=20) == "one"

    async def awaited() -> Any:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, app.backend.finish_many, [outcome(second, "completed", '"two"')])
        try:
            return await app.get(second.id).aresult(timeout=20)
        finally:
            await app.aclose()

    assert asyncio.run(awaited()) == "two"


def test_a_live_watch_is_woken_by_every_way_a_job_finishes(app: conveyor.App) -> None:
    completed, failed, cancelled, retried = claim(app, 4)
    app.declare("waiting")
    waiting = app.enqueue("waiting")
    wakes = {job_id: Wakes() for job_id in (completed.id, failed.id, cancelled.id, retried.id, waiting.id)}
    watches = [app.backend.watch_finishes([job_id], wake) for job_id, wake in wakes.items()]
    try:
        with live_watch(app, [], lambda: None):
            baseline = {job_id: wake.count for job_id, wake in wakes.items()}
            app.backend.finish_many(
                [
                    outcome(completed, "completed", "1"),
                    outcome(failed, "failed"),
                    outcome(cancelled, "cancelled"),
                    outcome(retried, "retry"),
                ]
            )
            app.backend.cancel(waiting.id)
            finals = (completed.id, failed.id, cancelled.id, waiting.id)
            wait_for(lambda: all(wakes[i].count > baseline[i] for i in finals), timeout=10)
            assert app.get(retried.id).state == "retry"  # not final: no promise either way
    finally:
        for watch in watches:
            watch.close()


def test_the_reaper_wakes_watches_of_the_jobs_it_fails(app: conveyor.App) -> None:
    app.declare("fragile", max_attempts=1)
    job = app.enqueue("fragile")
    [claimed] = app.backend.claim(ClaimRequest(("default",), 1, 0.2, "test-worker"))
    wakes = Wakes()
    with live_watch(app, [job.id], wakes):
        before = wakes.count
        wait_for(lambda: app.backend.reap_expired().failed == 1, timeout=10)
        wait_for(lambda: wakes.count > before, timeout=10)
    assert claimed.id == job.id and app.get(job.id).state == "failed"


def test_one_large_batch_wakes_the_watch_of_every_job_in_it(app: conveyor.App) -> None:
    """500 finishes in one write (PostgreSQL splits its notice at NOTIFY's 8000 bytes)."""
    claimed = claim(app, 500)
    wakes = {job.id: Wakes() for job in claimed}
    watches = [app.backend.watch_finishes([job_id], wake) for job_id, wake in wakes.items()]
    try:
        with live_watch(app, [], lambda: None):
            baseline = {job_id: wake.count for job_id, wake in wakes.items()}
            app.backend.finish_many([outcome(job, "completed", "null") for job in claimed])
            wait_for(lambda: all(w.count > baseline[i] for i, w in wakes.items()), timeout=10)
    finally:
        for watch in watches:
            watch.close()


def test_aresult_is_woken_by_the_finish_not_by_a_poll(app: conveyor.App) -> None:
    """Once its watch is live, aresult reads nothing until the finish wakes it, then returns at once."""
    [job] = claim(app, 1)
    reads: list[float] = []

    async def body() -> float:
        side = app.async_backend
        original = side.get

        async def counted(job_id: str) -> Any:
            reads.append(time.monotonic())
            return await original(job_id)

        side.get = counted  # type: ignore[method-assign]
        waiter = asyncio.ensure_future(app.get(job.id).aresult(timeout=30))
        await _quiet(reads, 0.3)
        app.backend.finish_many([outcome(job, "completed", '"done"')])
        finished_at = time.monotonic()  # the write is done: a busy server's slow write is not the wait's
        assert await waiter == "done"
        return time.monotonic() - finished_at

    with live_watch(app, [], lambda: None):
        latency = asyncio.run(_closing(app, body))
    assert latency < OLD_POLL_CAP, f"aresult returned {latency:.3f}s after the finish"


async def _quiet(reads: list[float], seconds: float) -> None:
    """Wait until no read happened for ``seconds`` (a poller reads at least every 0.1 s)."""
    deadline = time.monotonic() + LIVE_WITHIN
    while not reads or time.monotonic() - reads[-1] < seconds:
        assert time.monotonic() < deadline, f"the waiter kept reading: {len(reads)} reads"
        await asyncio.sleep(0.01)


async def _closing(app: conveyor.App, body: Callable[[], Any]) -> Any:
    try:
        return await body()
    finally:
        await app.aclose()


def test_result_is_woken_by_the_finish_not_by_a_poll(app: conveyor.App) -> None:
    """The sync result() waits on the same wake-up."""
    [job] = claim(app, 1)
    reads: list[float] = []
    original = app.backend.get

    def counted(job_id: str) -> Any:
        reads.append(time.monotonic())
        return original(job_id)

    handle = app.get(job.id)
    box: dict[str, Any] = {}

    def wait() -> None:
        box["value"] = handle.result(timeout=30)
        box["at"] = time.monotonic()

    with live_watch(app, [], lambda: None):
        app.backend.get = counted  # type: ignore[method-assign]
        try:
            thread = threading.Thread(target=wait)
            thread.start()
            wait_for(lambda: reads and time.monotonic() - reads[-1] >= 0.3, timeout=LIVE_WITHIN)
            app.backend.finish_many([outcome(job, "completed", '"done"')])
            finished_at = time.monotonic()  # the write is done (the waiter may even be faster)
            thread.join(30)
        finally:
            del app.backend.get
    assert box["value"] == "done"
    latency = box["at"] - finished_at
    assert latency < OLD_POLL_CAP, f"result() returned {latency:.3f}s after the finish"
