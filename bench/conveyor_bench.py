"""Workloads measured on Conveyor itself: bulk enqueue, drain, idle pickup latency, worker RSS."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import conveyor

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DrainResult:
    """Jobs per second while the workers were busy, and the worker's peak RSS."""

    jobs_per_s: float
    peak_rss_mb: float | None


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CONVEYOR_URL": url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }


def start_worker(url: str, processes: int = 1, concurrency: int = 5) -> subprocess.Popen[bytes]:
    """``conveyor worker bench.benchapp:app`` as a child process."""
    cmd = [
        sys.executable, "-m", "conveyor", "worker", "bench.benchapp:app",
        "--processes", str(processes), "--concurrency", str(concurrency), "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=_env(url), cwd=str(ROOT))


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait (graceful)."""
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a process (Linux), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def measure_enqueue(url: str, jobs: int, batch: int = 1000) -> float:
    """Jobs per second through ``enqueue_many`` in batches."""
    app = conveyor.App(url)
    app.declare("noop")
    app.backend.migrate()
    items = [{"task": "noop"} for _ in range(batch)]
    started = time.perf_counter()
    for _ in range(jobs // batch):
        app.enqueue_many(items)
    elapsed = time.perf_counter() - started
    app.close()
    return (jobs // batch) * batch / elapsed


def measure_drain(url: str, jobs: int, processes: int, concurrency: int = 5) -> DrainResult:
    """Pre-enqueue ``jobs`` no-ops, start the worker(s), time from first to last completion."""
    app = conveyor.App(url)
    app.declare("noop")
    for start in range(0, jobs, 5000):
        app.enqueue_many([{"task": "noop"} for _ in range(min(5000, jobs - start))])
    proc = start_worker(url, processes, concurrency)
    first_t = first_done = None
    peak: float | None = None
    deadline = time.monotonic() + 600
    try:
        while True:
            done = app.stats()["counts"]["completed"]
            now = time.perf_counter()
            if first_t is None and done > 0:
                first_t, first_done = now, done
            if done >= jobs:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"drain did not finish: {done}/{jobs}")
            pids = _children(proc.pid) if processes > 1 else [proc.pid]
            rss = [r for r in (peak_rss_mb(p) for p in pids) if r is not None]
            if rss:
                peak = max([peak or 0.0, *rss])
            time.sleep(0.01)
        assert first_t is not None and first_done is not None
        elapsed = max(now - first_t, 1e-9)
        rate = (jobs - first_done) / elapsed if jobs > first_done else float("nan")
    finally:
        pids = _children(proc.pid) if processes > 1 else [proc.pid]
        rss = [r for r in (peak_rss_mb(p) for p in pids) if r is not None]
        if rss:
            peak = max([peak or 0.0, *rss])
        stop_worker(proc)
        app.purge("completed")
        app.close()
    return DrainResult(rate, peak)


def measure_pickup(url: str, jobs: int, rate_per_s: float = 100.0) -> tuple[float, float]:
    """p50/p99 ms from enqueue to start for jobs trickled into an idle worker."""
    app = conveyor.App(url)
    app.declare("pickup")
    proc = start_worker(url, 1, 5)
    try:
        time.sleep(1.5)  # let it start and go idle
        handles = []
        interval = 1.0 / rate_per_s
        next_at = time.perf_counter()
        for _ in range(jobs):
            handles.append(app.enqueue("pickup", args=[time.time()]))
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        latencies = sorted(1000 * float(h.result(timeout=60)) for h in handles)
    finally:
        stop_worker(proc)
        app.close()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return p50, p99
