"""Crash safety with real processes: SIGKILL workers mid-job, lose nothing.

Several worker processes drain jobs that each record their execution; every
second or so one worker is killed with SIGKILL and a new one started. When the
queue drains, every job completed exactly once in the store, none is lost or
left processing, and the duplicates (re-runs of jobs whose worker died) are
bounded by the kills times the jobs a worker holds at once.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

import conveyor
from process.harness import WorkerProcesses

PROCESSES = {"sqlite": 2, "postgres": 3, "redis": 3}
JOBS = int(os.environ.get("CONVEYOR_CRASH_JOBS", "2000"))
CONCURRENCY = 5


def check_invariants(backend_name: str, url: str) -> None:
    """Backend-specific structure checks after a crash run (Redis: nothing in two places)."""
    if backend_name == "redis":
        try:
            from redis_invariants import check_redis_invariants
        except ImportError:
            pytest.fail("tests/redis_invariants.py is missing its check_redis_invariants(url)")
        check_redis_invariants(url)


@pytest.mark.slow
@pytest.mark.processes
def test_sigkill_workers_mid_job_loses_nothing(backend_name: str, backend_url: str, tmp_path: Path) -> None:
    app = conveyor.App(backend_url)
    app.declare("record", max_attempts=100)
    app.enqueue_many([{"task": "record", "args": [i], "kwargs": {"work_ms": 30}} for i in range(JOBS)])
    workers = WorkerProcesses(backend_url, tmp_path, concurrency=CONCURRENCY)
    for _ in range(PROCESSES[backend_name]):
        workers.start()
    rng = random.Random(7)
    deadline = time.monotonic() + 240
    survivors = []
    try:
        while app.stats()["counts"]["completed"] < JOBS:
            assert time.monotonic() < deadline, f"drain stalled: {app.stats()['counts']}"
            time.sleep(rng.uniform(0.6, 1.4))
            if app.stats()["counts"]["completed"] < JOBS * 0.9:
                victim = rng.choice(workers.alive())
                workers.kill(victim)
                workers.start()
    finally:
        survivors = workers.alive()
        codes = workers.stop_all()
    stats = app.stats()["counts"]
    assert stats == {**dict.fromkeys(stats, 0), "completed": JOBS}, stats
    assert len(survivors) == PROCESSES[backend_name]
    assert all(proc.returncode == 0 for proc in survivors), codes
    runs = workers.executions()
    missing = [n for n in range(JOBS) if runs[n] == 0]
    assert not missing, f"{len(missing)} jobs completed in the store but never ran: {missing[:10]}"
    duplicates = sum(runs.values()) - JOBS
    assert workers.kills >= 3, "the test must actually kill workers"
    # The listing is capped at 10,000 a page: page through the long form's 20,000.
    completed = [job for offset in range(0, JOBS, 10_000)
                 for job in app.jobs(status="completed", limit=10_000, offset=offset).items]  # fmt: skip
    assert len(completed) == JOBS
    recovered = [r for r in completed if r.attempt > 1]
    assert recovered, "kills must land mid-job: some jobs must have been recovered from a dead worker"
    assert all(any(a.outcome == "lost" for a in app.get(r.id).attempts) for r in recovered[:20])
    # A killed worker held at most concurrency running + prefetched (= concurrency) jobs.
    assert duplicates <= workers.kills * CONCURRENCY * 2, (duplicates, workers.kills)
    print(
        f"\n{backend_name}: {workers.kills} kills, {len(recovered)} jobs recovered from dead workers, "
        f"{duplicates} duplicate runs of {JOBS} jobs"
    )
    check_invariants(backend_name, backend_url)
    app.close()


@pytest.mark.processes
def test_sigterm_during_a_batch_loses_nothing_and_leaves_nothing_leased(
    backend_name: str, backend_url: str, tmp_path: Path
) -> None:
    app = conveyor.App(backend_url)
    app.declare("record", max_attempts=100)
    total = 300
    app.enqueue_many([{"task": "record", "args": [i], "kwargs": {"work_ms": 100}} for i in range(total)])
    workers = WorkerProcesses(backend_url, tmp_path, concurrency=CONCURRENCY, extra=("--grace", "10"))
    proc = workers.start()
    deadline = time.monotonic() + 30
    while app.stats()["counts"]["completed"] < 20:
        assert time.monotonic() < deadline, "worker did not start working"
        time.sleep(0.05)
    assert app.stats()["counts"]["processing"] > 0, "the batch must be mid-flight"
    (code,) = workers.stop_all(timeout=30)
    assert code == 0, proc.stderr.read().decode() if proc.stderr else code
    stats = app.stats()["counts"]
    assert stats["processing"] == 0, f"nothing left leased after SIGTERM: {stats}"
    assert stats["completed"] + stats["pending"] == total, stats
    for record in app.jobs(status="pending", limit=total).items:
        assert record.attempt == 0, "released jobs keep their attempt budget"
    # A second worker finishes the rest; every job ran exactly once.
    second = WorkerProcesses(backend_url, tmp_path, concurrency=CONCURRENCY, extra=("--burst",))
    (code,) = [second.start().wait(60)]
    assert code == 0
    assert app.stats()["counts"]["completed"] == total
    runs = workers.executions()
    assert sorted(runs) == list(range(total)) and set(runs.values()) == {1}, "graceful stop ran none twice"
    app.close()
