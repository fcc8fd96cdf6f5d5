"""Flow control's cost, per backend, each limited workload beside its unlimited twin in the same run.

``python -m bench.flow_control [--jobs 20000] [--backends sqlite,postgres,redis] [--processes 2]
[--concurrency 10] [--rate-seconds 10]``

1. ``concurrency``: drain ``--jobs`` no-op jobs from a queue whose ``concurrency`` equals
   the workers' total slots, against the same drain of an unlimited queue (target >= 80 %).
2. ``groups``: ``--jobs`` jobs over ``--jobs / 2`` groups with ``group_concurrency=1``,
   against the ungrouped drain (target >= 50 %).
3. ``rate``: a queue limited to 1,000 starts/s; the measured start rate over
   ``--rate-seconds`` once it is steady (target within 5 %).

Worker processes (``conveyor worker bench.benchapp:app``) start after the backlog is
stored; a drain's rate is jobs / (last finish - first start), read from the jobs
themselves, so worker start-up and enqueue are not counted.
"""

from __future__ import annotations

import argparse
import bisect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import conveyor

from .stores import scratch_store

QUEUE = "bench"
#: Each workload gets a store of its own under these, removed afterwards (bench.stores).
URLS = {
    "sqlite": lambda d: f"sqlite:///{d / 'flow.db'}",
    "postgres": lambda d: "postgresql://postgres@127.0.0.1:5432/test?schema=flowbench",
    "redis": lambda d: "redis://127.0.0.1:6379/0?prefix=flowbench",
}
ROOT = Path(__file__).resolve().parent.parent


def store(url: str, jobs: int, groups: int | None = None, **limits: Any) -> conveyor.App:
    """A fresh store holding the backlog (in one enqueue call per 5,000) and the queue's limits."""
    app = conveyor.App(url)
    app.declare("noop", queue=QUEUE)
    if limits:
        app.configure_queue(QUEUE, **limits)
    items = [
        {"task": "noop"} if groups is None else {"task": "noop", "group": f"g{i % groups}"}
        for i in range(jobs)
    ]
    for i in range(0, jobs, 5000):
        app.enqueue_many(items[i : i + 5000])
    return app


def workers(url: str, processes: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    cmd = [sys.executable, "-m", "conveyor", "worker", "bench.benchapp:app", "--queues", QUEUE,
           "--concurrency", str(concurrency), "--log-level", "warning"]  # fmt: skip
    return [subprocess.Popen(cmd, env=env, cwd=str(ROOT)) for _ in range(processes)]


def drain(
    app: conveyor.App, processes: int, concurrency: int, timeout: float = 600
) -> list[tuple[float, float]]:
    """Run workers until the backlog completed; each job's (start, finish) on the backend's clock."""
    total = sum(app.stats()["queues"][QUEUE].values())
    procs = workers(app.url, processes, concurrency)
    deadline = time.monotonic() + timeout
    try:
        while app.stats()["queues"][QUEUE]["completed"] < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"drain stalled: {app.stats()['queues'][QUEUE]}")
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    spans = []
    for offset in range(0, total, 10_000):
        for job in app.jobs(status="completed", queue=QUEUE, limit=10_000, offset=offset):
            assert job.started_at is not None and job.finished_at is not None
            spans.append((job.started_at.timestamp(), job.finished_at.timestamp()))
    return spans


def rate_of(spans: list[tuple[float, float]]) -> float:
    return len(spans) / (max(f for _, f in spans) - min(s for s, _ in spans))


def run(
    base: str, jobs: int, p: int, c: int, groups: int | None = None, **limits: Any
) -> list[tuple[float, float]]:
    """One workload on a store of its own, removed afterwards."""
    with scratch_store(base) as url:
        app = store(url, jobs, groups, **limits)
        try:
            return drain(app, p, c)
        finally:
            app.close()


def measure(backend: str, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    base = URLS[backend](folder)
    n, p, c = args.jobs, args.processes, args.concurrency
    out: dict[str, float] = {}
    out["unlimited"] = rate_of(run(base, n, p, c))
    out["concurrency"] = rate_of(run(base, n, p, c, concurrency=p * c))
    out["grouped"] = rate_of(run(base, n, p, c, groups=n // 2, group_concurrency=1))
    jobs = int(1000 * (args.rate_seconds + 4))
    starts = sorted(s for s, _ in run(base, jobs, p, c, rate_limit="1000/s"))
    window_start = starts[0] + 2.0  # past the first second's burst
    in_window = [s for s in starts if window_start <= s < window_start + args.rate_seconds]
    out["rate"] = len(in_window) / args.rate_seconds
    # The most starts in any 1 s window (each window opening at a start): at most 1,000.
    out["rate_max_1s"] = max(bisect.bisect_left(starts, s + 1.0) - i for i, s in enumerate(starts))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    slots = f"{args.processes} worker processes x {args.concurrency} slots"
    print(f"{args.jobs} jobs, {slots}, {os.cpu_count()} cores")
    header = ("backend", "unlimited/s", "concurrency/s", "ratio", "groups/s", "ratio", "rate/s", "max in 1s")
    print("{:<9} {:>12} {:>14} {:>6} {:>10} {:>6} {:>8} {:>10}".format(*header))
    with tempfile.TemporaryDirectory() as tmp:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            r = measure(backend, Path(tmp), args)
            print(
                f"{backend:<9} {r['unlimited']:>12,.0f} {r['concurrency']:>14,.0f} "
                f"{r['concurrency'] / r['unlimited']:>6.0%} {r['grouped']:>10,.0f} "
                f"{r['grouped'] / r['unlimited']:>6.0%} {r['rate']:>8,.0f} {r['rate_max_1s']:>10,.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
