"""Throughput per minute: completed and failed jobs by the minute they finished (every backend).

Each job counts once, in the minute its ``finished_at`` falls in, on the backend's
clock; retried attempts and cancellations are not failures; the window is whole
minutes ending with the current one, zeros included; one queue can be asked for.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

import conveyor
from conveyor.backends.base import ClaimRequest
from conveyor.backends.throughput import MAX_MINUTES, Throughput, minute_of
from conveyor.errors import InvalidWindow
from conveyor.testing.helpers import wait_for


def _tasks(app: conveyor.App) -> None:
    @app.task(name="ok", queue="default")
    def ok(n: int) -> int:
        return n

    @app.task(name="bad", queue="default", max_attempts=1)
    def bad() -> None:
        raise RuntimeError("boom")

    @app.task(name="flaky", queue="default", max_attempts=2, backoff=conveyor.backoff.fixed(3600))
    def flaky() -> None:
        raise ConnectionError("transient")

    @app.task(name="other_ok", queue="other")
    def other_ok() -> None:
        return None

    @app.task(name="other_bad", queue="other", max_attempts=1)
    def other_bad() -> None:
        raise RuntimeError("boom")


def _run(app: conveyor.App) -> None:
    worker = conveyor.Worker(app, queues=["default", "other"], install_signal_handlers=False)
    while worker.process_batch(100).to_dict()["processed"]:
        pass


def _expected(app: conveyor.App, ids: list[str], window: Throughput) -> Counter[tuple[int, str]]:
    """(minute, state) -> jobs, from each job's own finished_at, for the minutes of ``window``."""
    first = minute_of(window.minutes[0].start)
    found: Counter[tuple[int, str]] = Counter()
    for job_id in ids:
        record = app.backend.get(job_id)
        assert record is not None and record.finished_at is not None
        minute = minute_of(record.finished_at.timestamp())
        if minute >= first and record.state in ("completed", "failed"):
            found[minute, record.state] += 1
    return found


def _counted(window: Throughput) -> Counter[tuple[int, str]]:
    found: Counter[tuple[int, str]] = Counter()
    for entry in window.minutes:
        minute = minute_of(entry.start)
        if entry.completed:
            found[minute, "completed"] = entry.completed
        if entry.failed:
            found[minute, "failed"] = entry.failed
    return found


def test_throughput_counts_each_finished_job_in_the_minute_it_finished(app: conveyor.App) -> None:
    _tasks(app)
    done = [app.enqueue("ok", [n]).id for n in range(4)]
    failed = [app.enqueue("bad").id for _ in range(2)]
    retrying = app.enqueue("flaky").id  # one failed attempt, waiting an hour for its retry: no failure
    cancelled = app.enqueue("ok", [9], delay=3600).id
    app.cancel(cancelled)
    _run(app)
    assert app.get(retrying).status == "retry"
    window = app.backend.throughput(10)
    assert window.completed == 4 and window.failed == 2
    assert _counted(window) == _expected(app, done + failed, window)


def test_throughput_window_is_whole_minutes_ending_now_with_zeros(app: conveyor.App) -> None:
    before = app.backend.now()
    window = app.backend.throughput(7)
    after = app.backend.now()
    assert len(window.minutes) == 7
    starts = [m.start for m in window.minutes]
    assert all(s % 60 == 0 for s in starts)
    assert starts == [starts[0] + 60 * i for i in range(7)], "consecutive minutes, oldest first"
    assert before - 1 <= window.now <= after + 1
    assert starts[-1] <= window.now < starts[-1] + 60, "the current minute is the last"
    assert all(m.completed == 0 and m.failed == 0 for m in window.minutes)
    assert window.to_dict()["minutes"][0] == {
        "start": window.minutes[0].to_dict()["start"],
        "completed": 0,
        "failed": 0,
    }


def test_throughput_leaves_out_jobs_finished_before_the_window(app: conveyor.App) -> None:
    _tasks(app)
    ids = [app.enqueue("ok", [n]).id for n in range(3)] + [app.enqueue("bad").id]
    _run(app)
    # One minute: only what finished in the current minute counts (everything, unless the
    # minute turned since); whatever the timing, it is exactly the jobs whose finished_at
    # falls in the window.
    one = app.backend.throughput(1)
    assert len(one.minutes) == 1
    assert _counted(one) == _expected(app, ids, one)
    wide = app.backend.throughput(MAX_MINUTES)
    assert len(wide.minutes) == MAX_MINUTES and wide.completed == 3 and wide.failed == 1


def test_throughput_of_one_queue(app: conveyor.App) -> None:
    _tasks(app)
    for n in range(3):
        app.enqueue("ok", [n])
    app.enqueue("bad")
    for _ in range(2):
        app.enqueue("other_ok")
    app.enqueue("other_bad")
    app.enqueue("other_bad")
    _run(app)
    everywhere = app.backend.throughput(10)
    default = app.backend.throughput(10, "default")
    other = app.backend.throughput(10, "other")
    nowhere = app.backend.throughput(10, "no-such-queue")
    assert (everywhere.completed, everywhere.failed) == (5, 3)
    assert (default.completed, default.failed, default.queue) == (3, 1, "default")
    assert (other.completed, other.failed) == (2, 2)
    assert (nowhere.completed, nowhere.failed) == (0, 0) and len(nowhere.minutes) == 10


def test_throughput_counts_a_job_failed_by_the_reaper(app: conveyor.App) -> None:
    _tasks(app)
    job = app.enqueue("bad")
    (claimed,) = app.backend.claim(ClaimRequest(("default",), 1, 0.2, "w-lost"))
    assert claimed.id == job.id
    wait_for(lambda: app.backend.reap_expired().failed == 1, timeout=10)
    window = app.backend.throughput(5)
    assert window.failed == 1 and window.completed == 0


@pytest.mark.parametrize("minutes", [0, -1, MAX_MINUTES + 1, 1.5, math.nan, True, "60"])
def test_throughput_refuses_a_window_it_cannot_read(app: conveyor.App, minutes: object) -> None:
    with pytest.raises(InvalidWindow, match="from 1 to 1440"):
        app.backend.throughput(minutes)  # type: ignore[arg-type]
    assert issubclass(InvalidWindow, ValueError)
