"""Scenario 9, clock skew: workers whose clocks are 5 minutes fast or slow.

Leases are measured on the backend's clock (PostgreSQL's ``now()``, Redis's
``TIME``), so a worker's own clock must not matter: jobs that run three times
longer than the lease are renewed, never reclaimed early by a skewed reaper, and
run once each; and when a skewed worker is SIGKILLed, its leases lapse on time
(no lease extended forever) and a worker skewed the other way finishes its jobs.

SQLite and memory are not run: their clock is the host's, shared by every
process on the one machine they serve (see docs/reliability.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import conveyor
from torture.checker import check
from torture.harness import Workers, scale, wait_until

LEASE = 1.5
JOBS = int(scale(6, 40))


def skewed(offset: str) -> dict[str, str]:
    """The environment of a worker whose wall clock is ``offset`` ("+5m", "-5m") off."""
    minutes = float(offset.removesuffix("m"))
    return {"TORTURE_CLOCK_OFFSET": str(minutes * 60)}


@pytest.mark.processes
def test_skewed_workers_neither_reclaim_early_nor_hold_forever(
    backend_name: str, backend_url: str, tmp_path: Path
) -> None:
    if backend_name == "sqlite":
        pytest.skip("SQLite serves one host: every process reads the same clock (docs/reliability.md)")
    app = conveyor.App(backend_url)
    app.declare("step", max_attempts=5)
    started = time.monotonic()
    # Part 1: each job runs 3 leases long on a worker +5 min, watched by a reaper -5 min.
    slow = [{"task": "step", "args": [i], "kwargs": {"work_ms": LEASE * 3000}} for i in range(JOBS)]
    first = [j.id for j in app.enqueue_many(slow)]
    workers = Workers(backend_url, tmp_path / "log", concurrency=JOBS, lease=LEASE)
    fast = workers.start("--prefetch", "0", env=skewed("+5m"))
    wait_until(lambda: app.stats()["counts"]["processing"] == JOBS, 30, "the fast-clock worker to hold all")
    behind = workers.start("--prefetch", "0", env=skewed("-5m"))
    wait_until(lambda: app.stats()["counts"]["completed"] == JOBS, 60, "the long jobs to complete")
    reclaimed = [job_id for job_id in first if app.get(job_id).attempt != 1]
    assert not reclaimed, f"{len(reclaimed)} jobs were reclaimed while their worker renewed the lease"
    # Part 2: the fast worker holds new jobs and is SIGKILLed; its leases must lapse on time.
    behind.send_signal(15)
    behind.wait(30)
    second = [j.id for j in app.enqueue_many(slow)]
    fast_again = workers.start("--prefetch", "0", env=skewed("+5m"))
    wait_until(lambda: app.stats()["counts"]["processing"] == JOBS, 30, "the fast worker to hold the rest")
    workers.kill(fast_again)
    killed = time.monotonic()
    workers.start(env=skewed("-5m"))
    wait_until(
        lambda: app.stats()["counts"]["processing"] < JOBS, LEASE + 10, "the dead worker's leases to lapse"
    )
    lapsed_after = time.monotonic() - killed
    wait_until(lambda: app.stats()["counts"]["completed"] == 2 * JOBS, 60, "the other worker to finish them")
    workers.stop_all()
    assert fast.poll() is not None
    verdict = check(
        app,
        "clock skew (+5 min / -5 min workers)",
        backend_name,
        first + second,
        workers.log_dir,
        started=started,
        kills=1,
    )
    verdict.notes["early_reclaims"] = 0
    verdict.notes["lease_lapsed_after_kill_s"] = round(lapsed_after, 2)
    # Only part 2's killed jobs may run twice: none of them returned before the kill.
    verdict.assert_valid(max_duplicated=0)
    app.close()
