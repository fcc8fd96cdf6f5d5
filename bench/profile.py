"""Where Conveyor's workers spend their time: py-spy on a drain, summarised by file:function.

    python -m bench.profile [--backend redis] [--jobs 100000] [--kind noop] [--seconds 8]

Fills a fresh namespace with ``--jobs`` jobs (``noop``, ``io`` or ``retry``), starts
the same workers as the benchmark, records them with ``py-spy record
--subprocesses`` (idle threads excluded, so the samples are CPU and I/O waits
the profiler counts as active), and prints the functions with the largest share
of samples, inclusive and self, plus the per-thread split. The raw collapsed
stacks are kept in ``bench/results/profile-<backend>-<kind>.txt`` for a flame
graph. ``--enqueue`` profiles ``enqueue_many`` in this process instead.

``--latency`` traces the pickup path instead: one worker process with
timestamps on its fetch loop (``bench.peers.traced_worker``) and latency probes
trickled at 100/s, split into enqueue call, enqueue-to-wake-up, wake-up-to-claim,
the claim round trip, and claim-to-task-start (p50, p90 and p99 in ms).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .orchestrate import DEFAULT_PG, RESULTS, ROOT
from .peers.base import make_tag

#: Frames on every stack (thread start-up, the CLI): left out of the inclusive list.
GENERIC = ("threading.py:Thread.", "click/", "<frozen runpy>", "conveyor/__main__.py", "conveyor/cli/")


def summarise(stacks: Path, top: int = 25) -> str:
    """Inclusive and self shares per file:function, and per thread, from py-spy's raw output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        # py-spy raw frames are "function (path:line)", after "process N:..." and "thread (N): name".
        names = []
        for frame in frames:
            if frame.startswith("process "):
                continue
            if frame.startswith("thread ("):
                threads[frame.split("): ", 1)[-1]] += count
                continue
            function, _, where = frame.partition(" (")
            path = where.rsplit(":", 1)[0]
            names.append(f"{_short(path)}:{function}")
        for name in set(names):
            inclusive[name] += count
        if names:
            own[names[-1]] += count
    if not total:
        return "no samples"
    out = [f"{total} samples"]
    out.append("\ninclusive (share of samples with the function on the stack):")
    shown = [(name, n) for name, n in inclusive.most_common() if not name.startswith(GENERIC)][:top]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in shown]
    out.append("\nself (share of samples with the function on top):")
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    if threads:
        out.append("\nthreads:")
        out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in threads.most_common(12)]
    return "\n".join(out)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def trace_latency(adapter: Any, out: Path, probes: int) -> str:
    """Probes at 100/s into one traced worker process; the pickup path split into segments."""
    from .peers.base import WorkerPlan
    from .peers.harness import Workers, start_workers, stop_workers, wait_for

    config = adapter.workers("noop").description.split("(")[0].replace("--processes 2 ", "").split()
    command = [sys.executable, "-m", "bench.peers.traced_worker", *config, "--log-level", "warning"]
    workers: Workers = start_workers(adapter, WorkerPlan([command], 1, 1, "traced"))
    returned: dict[str, float] = {}
    try:
        adapter.send_pickup(time.time())
        wait_for(lambda: _lines(out, "start-") >= 1, 30, "the warm-up probe", workers)
        time.sleep(1.0)
        next_at = time.perf_counter()
        for _ in range(probes):
            sent = time.time()
            adapter.send_pickup(sent)
            returned[f"{sent:.6f}"] = time.time()
            next_at += 0.01
            time.sleep(max(0.0, next_at - time.perf_counter()))
        wait_for(lambda: _lines(out, "start-") >= probes + 1, 30, "the probes", workers)
    finally:
        stop_workers(workers)
    starts = dict(line.split() for line in _read(out, "start-"))
    segments: dict[str, list[float]] = collections.defaultdict(list)
    rows: list[tuple[float, float, float | None, float, float]] = []
    waiting = 0
    for line in _read(out, "trace-"):
        sent, woke, claim_start, claim_end = line.split()
        if sent not in returned or sent not in starts:
            continue
        s, w, c0, c1, t = float(sent), float(woke), float(claim_start), float(claim_end), float(starts[sent])
        segments["enqueue call (producer)"].append(returned[sent] - s)
        if w >= s:  # the fetch loop was blocked in wait_for_jobs when the probe was enqueued
            waiting += 1
            segments["enqueue -> wait_for_jobs returns"].append(w - s)
            segments["wake-up -> claim starts"].append(c0 - w)
        else:
            segments["enqueue -> claim starts (loop was busy)"].append(c0 - s)
        segments["claim round trip"].append(c1 - c0)
        segments["claim returned -> task starts"].append(t - c1)
        segments["total: enqueue -> task starts"].append(t - s)
        rows.append((t - s, returned[sent] - s, (w - s) if w >= s else None, c1 - c0, t - c1))
    lines = [f"{len(segments['total: enqueue -> task starts'])} probes, {waiting} found the loop waiting"]
    for name, values in segments.items():
        values.sort()
        p50, p90, p99 = (values[min(len(values) - 1, int(len(values) * q))] for q in (0.5, 0.9, 0.99))
        spread = f"p50 {1000 * p50:7.3f}  p90 {1000 * p90:7.3f}  p99 {1000 * p99:7.3f} ms"
        lines.append(f"  {name:<42} {spread}  (n={len(values)})")
    rows.sort(key=lambda row: row[0], reverse=True)  # (a busy loop has no wake-up: None)
    lines.append("  slowest 2% (total | enqueue call | to wake-up | claim | hand-off, ms):")
    for total, call, wake, claim, handoff in rows[: max(1, len(rows) // 50)]:
        woke = "busy" if wake is None else f"{1000 * wake:.2f}"
        steps = f"{1000 * call:5.2f} | {woke:>5} | {1000 * claim:5.2f} | {1000 * handoff:5.2f}"
        lines.append(f"    {1000 * total:6.2f} | {steps}")
    return "\n".join(lines)


def _read(out: Path, prefix: str) -> list[str]:
    return [line for path in out.glob(f"{prefix}*") for line in path.read_text().splitlines()]


def _lines(out: Path, prefix: str) -> int:
    return len(_read(out, prefix))


def main(argv: list[str] | None = None) -> int:
    """Fill, start workers, record them, summarise."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="redis", choices=["sqlite", "postgres", "redis"])
    parser.add_argument("--kind", default="noop", choices=["noop", "io", "retry"])
    parser.add_argument("--jobs", type=int, default=100000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--enqueue", action="store_true", help="profile enqueue_many in this process instead")
    parser.add_argument("--latency", action="store_true", help="trace the pickup path of probes at 100/s")
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument(
        "--redis-url", default=os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--pg-dsn", default=DEFAULT_PG)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    (tmp / "out").mkdir()
    os.environ.update(
        {
            "BENCH_TAG": make_tag("bench", "profile", args.backend, str(os.getpid())),
            "BENCH_OUT": str(tmp / "out"),
            "BENCH_REDIS_URL": args.redis_url,
            "BENCH_PG_DSN": args.pg_dsn,
            "BENCH_ENGINE": args.backend,
        }
    )
    from .peers import conveyor_peer
    from .peers.common import Counts
    from .peers.harness import start_workers, stop_workers

    adapter = conveyor_peer.make_adapter(f"conveyor-{args.backend}")
    adapter.setup()
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        if args.enqueue:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
            started = time.perf_counter()
            adapter.enqueue_noop(args.jobs)
            elapsed = time.perf_counter() - started
            profiler.stop()
            print(f"enqueue_many: {args.jobs / elapsed:,.0f} jobs/s")
            print(profiler.output_text(unicode=False, color=False, show_all=False))
            return 0
        if args.latency:
            print(trace_latency(adapter, tmp / "out", args.probes))
            return 0
        {"noop": adapter.enqueue_noop, "io": adapter.enqueue_io, "retry": adapter.enqueue_flaky}[args.kind](
            args.jobs
        )
        plan = adapter.workers(args.kind)
        workers = start_workers(adapter, plan)
        counts = Counts(tmp / "out")
        count = counts.ids if args.kind == "retry" else counts.done
        stacks = RESULTS / f"profile-{args.backend}-{args.kind}.txt"
        try:
            while count()[0] == 0:
                time.sleep(0.01)
            before, t0 = count()[0], time.perf_counter()
            spy = [
                shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
                "record", "--pid", str(workers.procs[0].pid), "--subprocesses", "--nonblocking",
                "--format", "raw", "--rate", str(args.rate), "--duration", str(int(args.seconds)),
                "--output", str(stacks), "--threads",
            ]  # fmt: skip
            subprocess.run(spy, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            after, t1 = count()[0], time.perf_counter()
        finally:
            stop_workers(workers)
        print(f"{args.backend} {args.kind}: {plan.description}")
        rate = (after - before) / (t1 - t0)
        print(f"drained {after - before:,} jobs in {t1 - t0:.1f}s while profiled: {rate:,.0f}/s")
        if after >= args.jobs:
            print("warning: the backlog ran out before the profile ended; raise --jobs")
        print(summarise(stacks))
        print(f"\ncollapsed stacks: {stacks.relative_to(ROOT)}")
    finally:
        adapter.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
