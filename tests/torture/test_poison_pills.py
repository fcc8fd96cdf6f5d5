"""Scenario 7, poison pills: jobs that kill their worker end ``failed`` ("worker lost").

Three pills, each with two attempts: ``os._exit``, a segfault
(``ctypes.string_at(0)``) and a memory blow-up under ``--max-memory``. Each
kills the worker process that runs it (the test restarts dead workers, as a
supervisor would); after its attempts it must be ``failed`` with "worker lost",
and the ordinary jobs around it must all complete.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import conveyor
from conveyor.backends.kit import WORKER_LOST
from conveyor.worker.faults import MEMORY_EXIT_CODE
from torture.checker import check
from torture.harness import Workers, scale

PILLS = ("exit_now", "segfault", "blow_memory")
ORDINARY = int(scale(200, 2000))


@pytest.mark.processes
def test_poison_pills_end_failed_worker_lost(backend_name: str, backend_url: str, tmp_path: Path) -> None:
    app = conveyor.App(backend_url)
    for pill in PILLS:
        app.declare(pill, max_attempts=2)
    app.declare("step", max_attempts=100)
    started = time.monotonic()
    pills = [app.enqueue(pill, args=[i]).id for i, pill in enumerate(PILLS)]
    ordinary = [j.id for j in app.enqueue_many([{"task": "step", "args": [i]} for i in range(ORDINARY)])]
    # One job at a time, none prefetched: each death is one pill's attempt.
    extra = ("--max-memory", "1G", "--prefetch", "0")
    workers = Workers(backend_url, tmp_path / "log", concurrency=1, lease=1.0, extra=extra)
    for _ in range(2):
        workers.start()
    deaths = 0
    deadline = time.monotonic() + 120
    try:
        while True:
            counts = app.stats()["counts"]
            if counts["completed"] + counts["failed"] == ORDINARY + len(PILLS):
                break
            assert time.monotonic() < deadline, f"stalled: {counts}\n{workers.stderr()}"
            for proc in workers.procs:
                if proc.poll() is not None and not getattr(proc, "counted", False):
                    proc.counted = True  # type: ignore[attr-defined]
                    deaths += 1
                    workers.start()
            time.sleep(0.1)
    finally:
        workers.stop_all()
    for job_id in pills:
        job = app.get(job_id)
        assert job.state == "failed" and job.attempt == 2, (job.task, job.state, job.attempt)
        assert WORKER_LOST in (job.error or ""), (job.task, job.error)
    codes = sorted({p.returncode for p in workers.procs if getattr(p, "counted", False)})
    verdict = check(
        app,
        "poison pills (exit, segfault, memory)",
        backend_name,
        pills + ordinary,
        workers.log_dir,
        expected_state=dict.fromkeys(pills, "failed"),
        started=started,
        kills=deaths,
    )
    verdict.notes["exit_codes"] = codes
    # os._exit(3), SIGSEGV, and the worker's own exit on MemoryError under --max-memory.
    assert codes == [-11, 3, MEMORY_EXIT_CODE], codes
    assert deaths == 2 * len(PILLS), f"each pill must kill its worker twice: {deaths} deaths"
    # A pill that kills its process outright (exit, segfault) may take with it the
    # acknowledgement of the job that worker finished just before: at most one per death.
    # The memory pill's worker writes those before it leaves.
    verdict.assert_valid(max_duplicated=deaths)
    app.close()
