"""Flow control with real worker processes: a queue limit holds across processes, and slots held
by SIGKILLed workers come back when the reaper runs, without the limit ever being exceeded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import conveyor
from process.harness import WorkerProcesses


def spans(log_dir: Path) -> dict[int, tuple[float, float]]:
    """Each job's last recorded run: start and end (wall clock of one machine)."""
    found: dict[int, tuple[float, float]] = {}
    for log in log_dir.glob("*.spans"):
        for line in log.read_text().splitlines():
            n, start, end = line.split()
            found[int(n)] = (float(start), float(end))
    return found


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    peak = level = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def limited_app(url: str, total: int, work_ms: float, concurrency: int) -> conveyor.App:
    app = conveyor.App(url)
    app.declare("hold", queue="limited", max_attempts=100)
    app.configure_queue("limited", concurrency=concurrency)
    app.enqueue_many([{"task": "hold", "args": [i], "kwargs": {"work_ms": work_ms}} for i in range(total)])
    return app


def kill_a_holder(app: conveyor.App, workers: WorkerProcesses) -> bool:
    """SIGKILL a worker process that holds a limited slot right now (worker ids are host:pid:...)."""
    holders = {int(str(job.worker).split(":")[1]) for job in app.jobs(status="processing", queue="limited")}
    for proc in workers.alive():
        if proc.pid in holders:
            workers.kill(proc)
            return True
    return False


def watch(
    app: conveyor.App, total: int, limit: int, timeout: float, workers: WorkerProcesses | None = None
) -> int:
    """Poll until every job completed, asserting the limit at each look; the most seen processing."""
    deadline = time.monotonic() + timeout
    peak = 0
    killed = False
    while (counts := app.stats()["queues"].get("limited", {})).get("completed", 0) < total:
        assert time.monotonic() < deadline, f"drain stalled: {counts}"
        assert counts.get("processing", 0) <= limit, counts
        peak = max(peak, counts.get("processing", 0))
        if workers is not None and not killed and counts.get("completed", 0) >= total // 4:
            killed = kill_a_holder(app, workers)
        time.sleep(0.02)
    return peak


@pytest.mark.processes
def test_a_queue_concurrency_limit_holds_across_three_worker_processes(
    backend_url: str, tmp_path: Path
) -> None:
    total, limit = 60, 4
    app = limited_app(backend_url, total, 50.0, limit)
    workers = WorkerProcesses(backend_url, tmp_path, concurrency=5, extra=("--queues", "limited"))
    for _ in range(3):
        workers.start()
    try:
        peak = watch(app, total, limit, timeout=60)
    finally:
        codes = workers.stop_all()
    assert codes == [0, 0, 0]
    runs = spans(tmp_path)
    assert sorted(runs) == list(range(total))
    assert 2 <= max_overlap(list(runs.values())) <= limit
    assert peak <= limit
    app.close()


@pytest.mark.processes
def test_slots_of_sigkilled_workers_come_back_when_reaped(backend_url: str, tmp_path: Path) -> None:
    total, limit = 40, 3
    app = limited_app(backend_url, total, 150.0, limit)
    workers = WorkerProcesses(backend_url, tmp_path, concurrency=3, extra=("--queues", "limited"))
    for _ in range(3):
        workers.start()
    try:
        watch(app, total, limit, timeout=90, workers=workers)
        assert workers.kills == 1
    finally:
        workers.stop_all()
    assert app.stats()["queues"]["limited"] == {**dict.fromkeys(conveyor.ALL_STATES, 0), "completed": total}
    recovered = [job for job in app.jobs(status="completed", queue="limited", limit=total) if job.attempt > 1]
    assert recovered, "the killed worker held jobs that the reaper returned"
    assert sorted(spans(tmp_path)) == list(range(total)), "nothing lost"
    assert max_overlap(list(spans(tmp_path).values())) <= limit
    app.close()
