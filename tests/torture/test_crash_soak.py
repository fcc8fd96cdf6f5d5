"""Scenario 1, crash soak: worker processes SIGKILLed one at a time while they drain a backlog.

Long form: 10,000 jobs, 4 worker processes, one SIGKILLed (and replaced) every
2 s for 60 s. Short form: 1,000 jobs, one kill a second for 5 s.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

import conveyor
from torture.checker import check
from torture.harness import Workers, scale, wait_until

JOBS = int(scale(800, 10_000))
PROCESSES = 4
CONCURRENCY = 5
KILL_EVERY = scale(1.0, 2.0)
KILL_FOR = scale(5.0, 60.0)
WORK_MS = scale(20, 100)


@pytest.mark.processes
def test_crash_soak(backend_name: str, backend_url: str, tmp_path: Path) -> None:
    print(f"\ncrash soak: {JOBS} jobs, {PROCESSES} processes, SIGKILL every {KILL_EVERY}s for {KILL_FOR}s")
    app = conveyor.App(backend_url)
    app.declare("step", max_attempts=100)
    started = time.monotonic()
    accepted = [
        job.id
        for job in app.enqueue_many(
            [{"task": "step", "args": [i], "kwargs": {"work_ms": WORK_MS}} for i in range(JOBS)]
        )
    ]
    workers = Workers(backend_url, tmp_path / "log", concurrency=CONCURRENCY)
    for _ in range(PROCESSES):
        workers.start()
    rng = random.Random(17)
    survivors = []
    try:
        kill_until = time.monotonic() + KILL_FOR
        while time.monotonic() < kill_until and app.stats()["counts"]["completed"] < JOBS:
            time.sleep(KILL_EVERY)
            workers.kill(rng.choice(workers.alive()))
            workers.start()
        wait_until(lambda: app.stats()["counts"]["completed"] == JOBS, scale(120, 600), "the drain")
    finally:
        survivors = workers.alive()
        workers.stop_all()
    verdict = check(
        app, "crash soak", backend_name, accepted, workers.log_dir, started=started, kills=workers.kills
    )
    assert workers.kills >= 3, "the scenario must really kill workers"
    # A killed worker held at most concurrency running + concurrency prefetched jobs.
    verdict.assert_valid(max_duplicated=workers.kills * CONCURRENCY * 2)
    # A replacement still importing when SIGTERM came dies of it: it had claimed nothing yet.
    codes = [proc.returncode for proc in survivors]
    assert len(survivors) == PROCESSES and set(codes) <= {0, -15}, (codes, workers.stderr())
    app.close()
