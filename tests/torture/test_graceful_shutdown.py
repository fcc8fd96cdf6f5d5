"""Scenario 11, graceful shutdown: SIGTERM with 100 jobs in flight; nothing ``processing`` after grace + 1 s.

One worker process runs 100 jobs at once (concurrency 100, no prefetch), each
longer than the grace period; on SIGTERM it stops claiming, waits out the grace,
releases what still runs, and exits. Within grace + 1 s of the signal no job is
``processing``; a second worker then finishes every job.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

import conveyor
from torture.checker import check
from torture.harness import Workers, wait_until

IN_FLIGHT = 100
GRACE = 2.0


@pytest.mark.processes
def test_sigterm_with_100_in_flight(backend_name: str, backend_url: str, tmp_path: Path) -> None:
    app = conveyor.App(backend_url)
    app.declare("step", max_attempts=5)
    started = time.monotonic()
    items = [{"task": "step", "args": [i], "kwargs": {"work_ms": 4000}} for i in range(IN_FLIGHT)]
    accepted = [j.id for j in app.enqueue_many(items)]
    workers = Workers(backend_url, tmp_path / "log", concurrency=IN_FLIGHT, lease=5.0)
    proc = workers.start("--prefetch", "0", "--grace", str(GRACE))
    wait_until(lambda: app.stats()["counts"]["processing"] == IN_FLIGHT, 60, "100 jobs in flight")
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    wait_until(lambda: app.stats()["counts"]["processing"] == 0, GRACE + 5, "nothing processing")
    settled = time.monotonic() - signalled
    assert proc.wait(30) == 0, workers.stderr()
    assert settled <= GRACE + 1.0, f"jobs still processing {settled:.2f}s after SIGTERM (grace {GRACE}s)"
    counts = app.stats()["counts"]
    assert counts["pending"] == IN_FLIGHT, counts
    assert all(job.attempt == 0 for job in app.jobs(status="pending", limit=IN_FLIGHT)), "released, not lost"
    workers.start("--burst")
    wait_until(lambda: app.stats()["counts"]["completed"] == IN_FLIGHT, 60, "a second worker to finish")
    workers.stop_all()
    verdict = check(
        app,
        "graceful shutdown (SIGTERM, 100 in flight)",
        backend_name,
        accepted,
        workers.log_dir,
        started=started,
    )
    verdict.notes["processing_zero_after_s"] = round(settled, 2)
    verdict.assert_valid(max_duplicated=0)
    app.close()
