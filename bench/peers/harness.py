"""The sessions, identical for every system: start its workers, feed them, count what they finish.

A session runs in one driver process (the system's own interpreter) against one
fresh namespace:

- ``throughput``: time the enqueue of N no-op jobs (workload 1), then start the
  workers and time the drain of that backlog (workload 2), and record the
  workers' peak RSS;
- ``latency``: start the workers, warm them up, let them idle for a second, then
  trickle probes at 100/s and record enqueue-to-start latency (workload 3);
- ``io``: enqueue N jobs of 5 ms sleep, start workers with 20 slots, time the drain (workload 4);
- ``retry``: enqueue N jobs of which every fifth fails its first attempt, time
  until every job has completed once, and count lost and duplicated jobs (workload 5).

Drain rates are measured over the window in which every worker process is
busy: from the moment the last of them records its first completion to the
last completion (so a worker that boots a second later than its sibling does
not count against the system). If one process finished 80% of the jobs before
the other woke, the window starts at the first completion instead. Drains may
be capped in time (``cap_s``): a system too slow to drain the backlog within the
cap is timed over the cap, with the full backlog queued when it starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import ROOT, Adapter, WorkerPlan
from .common import Counts

#: How often the harness looks at the completion files.
POLL = 0.005
#: Seconds the workers sit idle between the drain and the first latency probe.
IDLE_BEFORE_PROBES = 1.0


class WorkloadFailed(RuntimeError):
    """A workload did not finish (timeout, lost jobs, a worker that died)."""


@dataclass
class Workers:
    """Running worker processes (each the leader of its own process group) and their log."""

    procs: list[subprocess.Popen[bytes]]
    log: Path

    def alive(self) -> bool:
        """True while every started process is still running."""
        return all(p.poll() is None for p in self.procs)

    def tail(self, lines: int = 30) -> str:
        """The end of the workers' combined log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_workers(adapter: Adapter, plan: WorkerPlan) -> Workers:
    """Start every command of ``plan`` in its own session, logging to the namespace's directory."""
    env = {
        **os.environ,
        **adapter.ns.env(),
        **plan.env,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "PYTHONUNBUFFERED": "1",
    }
    log = adapter.ns.out.parent / "workers.log"
    procs = []
    with log.open("ab") as sink:
        for command in plan.commands:
            procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=str(ROOT),
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return Workers(procs, log)


def stop_workers(workers: Workers, grace: float = 8.0) -> None:
    """SIGTERM every process group, then SIGKILL whatever is left after ``grace`` seconds."""
    for proc in workers.procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in workers.procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
    for proc in workers.procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def group_rss_mb(workers: Workers) -> dict[str, float]:
    """Peak RSS (VmHWM) of the largest process in the workers' groups, and the sum over them."""
    groups = {p.pid for p in workers.procs}
    peaks: list[float] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pgrp = int(stat.rsplit(")", 1)[1].split()[2])
            if pgrp not in groups:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    if not peaks:
        return {}
    return {"worker_peak_rss_mb": round(max(peaks), 1), "workers_total_rss_mb": round(sum(peaks), 1)}


def group_cpu_s(workers: Workers) -> float:
    """CPU seconds (user + system, all threads) used so far by the live processes of the workers' groups."""
    groups = {p.pid for p in workers.procs}
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) in groups:
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def drain(
    workers: Workers,
    count: Callable[[], tuple[int, int]],
    total: int,
    processes: int,
    timeout: float,
    cap: float | None = None,
) -> dict[str, Any]:
    """Wait until ``count()`` reaches ``total``; the rate over the window in which all processes worked.

    With ``cap``, stop measuring ``cap`` seconds after the first completion even if
    jobs remain (the backlog is still ``total`` deep when the measurement starts).
    """
    started = time.perf_counter()
    first: tuple[float, int] | None = None
    cpu_at_first = 0.0
    all_busy: tuple[float, int] | None = None
    capped = False
    while True:
        done, active = count()
        now = time.perf_counter()
        if first is None and done > 0:
            first = (now, done)
            cpu_at_first = group_cpu_s(workers)  # from here on the workers only drain (start-up excluded)
        if all_busy is None and active >= processes:
            all_busy = (now, done)
        if done >= total:
            break
        if cap is not None and first is not None and now - first[0] >= cap:
            capped = True
            break
        if now - started > timeout:
            raise WorkloadFailed(f"only {done}/{total} jobs finished in {timeout:.0f}s\n{workers.tail()}")
        if not workers.alive():
            time.sleep(0.5)
            done, _ = count()
            if done < total:
                raise WorkloadFailed(f"a worker process exited at {done}/{total} jobs\n{workers.tail()}")
        time.sleep(POLL)
    assert first is not None
    cpu_used, after_first = group_cpu_s(workers) - cpu_at_first, done - first[1]
    # /proc counts CPU in 10 ms ticks: below 0.2 s of it the figure would be mostly rounding.
    cpu_per_job = round(cpu_used / after_first * 1e6, 1) if cpu_used >= 0.2 and after_first else None
    window, label = first, "first completion"
    if all_busy is not None and done - all_busy[1] >= 0.2 * done:
        window, label = all_busy, "all processes busy"
    seconds = max(now - window[0], 1e-6)
    return {
        "jobs_per_s": round((done - window[1]) / seconds, 1),
        "window": label,
        "window_jobs": done - window[1],
        "window_s": round(seconds, 4),
        "to_first_s": round(first[0] - started, 3),
        "completed": done,
        "capped": capped,
        "worker_cpu_us_per_job": cpu_per_job,
    }


def wait_for(condition: Callable[[], bool], timeout: float, what: str, workers: Workers) -> None:
    """Poll ``condition`` until true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise WorkloadFailed(f"{what} did not happen within {timeout:.0f}s\n{workers.tail()}")
        time.sleep(0.02)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def probes(adapter: Adapter, counts: Counts, n: int, rate: float, workers: Workers) -> dict[str, Any]:
    """Trickle ``n`` latency probes at ``rate`` per second; enqueue-to-start latencies in ms."""
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for _ in range(n):
        adapter.send_pickup(time.time())
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    wait_for(lambda: len(counts.latencies()) >= n, 30.0, f"{n} latency probes", workers)
    values = sorted(counts.latencies())
    return {
        "p50_ms": round(statistics.median(values), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(values[-1], 3),
        "mean_ms": round(statistics.fmean(values), 3),
        "probes": len(values),
    }


def session_throughput(adapter: Adapter, sizes: dict[str, Any]) -> dict[str, Any]:
    """Workloads 1 and 2: enqueue N no-ops (timed), then start the workers and time the drain."""
    counts = Counts(adapter.ns.out)
    n = sizes["drain"]
    plan = adapter.workers("noop")
    started = time.perf_counter()
    adapter.enqueue_noop(n)
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {"workers": plan.description}
    result["enqueue"] = {"jobs_per_s": round(n / elapsed, 1), "jobs": n, "seconds": round(elapsed, 4)}
    workers = start_workers(adapter, plan)
    try:
        drained = drain(
            workers, counts.done, n, plan.processes, timeout=max(120.0, n / 50), cap=sizes["cap_s"]
        )
        result["drain"] = {**drained, "jobs": n, **group_rss_mb(workers)}
    finally:
        stop_workers(workers)
    return result


def warm_up(adapter: Adapter, counts: Counts, processes: int, workers: Workers, limit: float = 3.0) -> None:
    """Trickle single no-ops until every worker process has run one (or ``limit`` s): all booted."""
    adapter.enqueue_noop(1)
    wait_for(lambda: counts.done()[0] >= 1, 60.0, "the first warm-up job", workers)
    sent, deadline = 1, time.monotonic() + limit
    while counts.done()[1] < processes and time.monotonic() < deadline:
        adapter.enqueue_noop(1)
        sent += 1
        time.sleep(0.02)
    wait_for(lambda: counts.done()[0] >= sent, 30.0, "the warm-up jobs", workers)


def session_latency(adapter: Adapter, sizes: dict[str, Any]) -> dict[str, Any]:
    """Workload 3: warm the workers up, let them idle, then trickle latency probes at a fixed rate."""
    counts = Counts(adapter.ns.out)
    plan = adapter.workers("latency")
    workers = start_workers(adapter, plan)
    try:
        warm_up(adapter, counts, plan.processes, workers)
        time.sleep(IDLE_BEFORE_PROBES)
        probed = probes(adapter, counts, sizes["latency"], sizes["latency_rate"], workers)
    finally:
        stop_workers(workers)
    return {"workers": plan.description, "latency": {**probed, "rate_per_s": sizes["latency_rate"]}}


def session_io(adapter: Adapter, sizes: dict[str, Any]) -> dict[str, Any]:
    """Workload 4: N jobs of 5 ms simulated I/O with 20 slots."""
    counts = Counts(adapter.ns.out)
    n = sizes["io"]
    plan = adapter.workers("io")
    adapter.enqueue_io(n)
    workers = start_workers(adapter, plan)
    try:
        drained = drain(
            workers, counts.done, n, plan.processes, timeout=max(120.0, n / 20), cap=sizes["cap_s"]
        )
    finally:
        stop_workers(workers)
    io = {**drained, "jobs": n, "slots": plan.concurrency, "max_in_flight": counts.max_in_flight()}
    return {"workers": plan.description, "io": io}


def session_retry(adapter: Adapter, sizes: dict[str, Any]) -> dict[str, Any]:
    """Workload 5: N jobs, 20% fail once and succeed on retry; every job must complete (no cap)."""
    counts = Counts(adapter.ns.out)
    n = sizes["retry"]
    plan = adapter.workers("retry")
    adapter.enqueue_flaky(n)
    workers = start_workers(adapter, plan)
    try:
        # The window ends when every distinct job has completed (the retried ones come last).
        drained = drain(workers, counts.ids, n, plan.processes, timeout=max(120.0, n / 10))
        unique, total = counts.unique_ids()
    finally:
        stop_workers(workers)
    return {
        "workers": plan.description,
        "retry": {
            **drained,
            "jobs": n,
            "completed": unique,
            "duplicates": total - unique,
            "first_attempt_failures": counts.failed_first(),
        },
    }


SESSIONS: dict[str, Callable[[Adapter, dict[str, Any]], dict[str, Any]]] = {
    "throughput": session_throughput,
    "latency": session_latency,
    "io": session_io,
    "retry": session_retry,
}

#: Which session measures which workload.
WORKLOAD_SESSION = {
    "enqueue": "throughput",
    "drain": "throughput",
    "latency": "latency",
    "io": "io",
    "retry": "retry",
}
