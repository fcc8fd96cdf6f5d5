"""Scenario 8, replay: failed jobs resubmitted twice, concurrently, run exactly once more.

Jobs fail for good (``Permanent``); two threads, each with its own App, then
resubmit the whole failure table at the same instant; a drain runs what is due.
The two resubmissions together move each job once, and each job runs once more.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor
from conveyor.testing import drain
from torture.checker import check
from torture.harness import scale

JOBS = int(scale(1000, 10_000))


@pytest.fixture
def quiet_worker_log() -> Iterator[None]:
    """A thousand expected failures need not be logged one by one."""
    logger = logging.getLogger("conveyor.worker")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.mark.usefixtures("quiet_worker_log")
def test_replay_twice_concurrently_runs_each_once(
    backend_name: str, backend_url: str, tmp_path: Path
) -> None:
    app = conveyor.App(backend_url)
    failing = True
    runs: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    @app.task(max_attempts=3)
    def flaky(n: int) -> int:
        if failing:
            raise conveyor.Permanent(f"job {n} fails until replayed")
        with lock:
            runs[n] += 1
        return n

    started = time.monotonic()
    accepted = [j.id for j in app.enqueue_many([{"task": "flaky", "args": [i]} for i in range(JOBS)])]
    assert drain(app).failed == JOBS
    failing = False
    others = [conveyor.App(backend_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    moved: list[int] = []

    def replay(other: conveyor.App) -> None:
        barrier.wait()
        moved.append(other.resubmit_many(status="failed"))

    threads = [threading.Thread(target=replay, args=(other,)) for other in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(moved) == JOBS, f"the two resubmissions moved {moved}: each job once in total"
    drain(app)
    twice = [n for n, count in runs.items() if count > 1]
    assert not twice and set(runs) == set(range(JOBS)), f"{len(twice)} ran twice, {JOBS - len(runs)} never"
    verdict = check(app, "replay twice concurrently", backend_name, accepted, None, started=started)
    verdict.notes["resubmitted"] = moved
    verdict.assert_valid()
    for each in (app, *others):
        each.close()
