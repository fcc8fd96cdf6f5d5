"""Scenarios 2 and 3: a worker dies after the handler returned, and a zombie worker resumes late.

2. ``CONVEYOR_FAULT_POINT=after-run:exit``: the handler returns, the process
   exits before the outcome is acknowledged; the lease lapses and another worker
   runs the job again: exactly one re-execution, the first attempt recorded as lost.
3. A worker is SIGSTOPped while its jobs run, past their leases; another worker
   completes them; the first resumes (SIGCONT) and its late writes change nothing.
"""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

import pytest

import conveyor
from conveyor.worker.faults import FAULT_EXIT_CODE
from torture.checker import check, read_executions
from torture.harness import Workers, scale, wait_until


@pytest.mark.processes
def test_kill_between_return_and_acknowledgement(backend_name: str, backend_url: str, tmp_path: Path) -> None:
    jobs = int(scale(10, 100))
    app = conveyor.App(backend_url)
    app.declare("step", max_attempts=5)
    started = time.monotonic()
    accepted = [j.id for j in app.enqueue_many([{"task": "step", "args": [i]} for i in range(jobs)])]
    workers = Workers(backend_url, tmp_path / "log", concurrency=1)
    doomed = workers.start("--prefetch", "0", env={"CONVEYOR_FAULT_POINT": "after-run:exit"})
    assert doomed.wait(30) == FAULT_EXIT_CODE, workers.stderr()
    workers.start()
    wait_until(lambda: app.stats()["counts"]["completed"] == jobs, 60, "the rest to complete")
    workers.stop_all()
    verdict = check(
        app,
        "kill after return, before ack",
        backend_name,
        accepted,
        workers.log_dir,
        started=started,
        kills=1,
    )
    verdict.assert_valid(max_duplicated=1)
    runs = collections.Counter(run.job for run in read_executions(workers.log_dir))
    (twice,) = [job for job, count in runs.items() if count == 2]
    assert verdict.duplicated == 1, "exactly one re-execution"
    job = app.get(twice)
    assert job.attempt == 2
    assert [a.outcome for a in job.attempts] == ["lost", "completed"], job.attempts
    app.close()


@pytest.mark.processes
def test_zombie_worker_resumes_and_changes_nothing(
    backend_name: str, backend_url: str, tmp_path: Path
) -> None:
    jobs = int(scale(5, 40))
    app = conveyor.App(backend_url)
    app.declare("step", max_attempts=5)
    started = time.monotonic()
    items = [{"task": "step", "args": [i], "kwargs": {"work_ms": 2500}} for i in range(jobs)]
    accepted = [j.id for j in app.enqueue_many(items)]
    workers = Workers(backend_url, tmp_path / "log", concurrency=jobs, lease=1.0)
    zombie = workers.start("--prefetch", "0")
    wait_until(lambda: app.stats()["counts"]["processing"] == jobs, 30, "the zombie to hold every job")
    zombie.send_signal(signal.SIGSTOP)
    time.sleep(0.3)  # let an in-flight heartbeat land, if one was mid-write
    rescuer = workers.start()
    wait_until(lambda: app.stats()["counts"]["completed"] == jobs, 60, "another worker to complete them")
    rescuer.send_signal(signal.SIGTERM)
    rescuer.wait(30)
    before = {job_id: app.get(job_id).to_dict() for job_id in accepted}
    zombie.send_signal(signal.SIGCONT)
    wait_until(
        lambda: len([r for r in read_executions(workers.log_dir) if r.worker == zombie.pid]) == jobs,
        30,
        "the zombie's handlers to return",
    )
    zombie.send_signal(signal.SIGTERM)
    zombie.wait(30)  # a graceful stop writes (tries to write) every decided outcome
    after = {job_id: app.get(job_id).to_dict() for job_id in accepted}
    assert after == before, "the zombie's late writes changed a job"
    for job_id in accepted:
        outcomes = [a.outcome for a in app.get(job_id).attempts]
        assert outcomes == ["lost", "completed"], (job_id, outcomes)
    verdict = check(
        app,
        "zombie (SIGSTOP past the lease)",
        backend_name,
        accepted,
        workers.log_dir,
        started=started,
        kills=1,
    )
    verdict.notes["late_writes_applied"] = 0
    verdict.assert_valid(max_duplicated=jobs)
    app.close()
