"""``make bench``: Conveyor's own figures on each available backend, side by side in one run.

    python -m bench.run [--smoke] [--backends sqlite,postgres,redis] [--workloads ...] [--runs N]

The same five workloads, harness and adapters as the peer comparison
(``python -m bench.compare``, ``make bench-peers``), Conveyor only, from this
venv: enqueue and drain 20,000 no-op jobs, idle pickup latency, 5 ms I/O jobs
with 20 slots, and a retry workload; then the workers' CPU per drained job and their
start-up (spawn to first job, 1 and 2 processes, bench.startup). Prints the tables
and writes ``bench/results/latest.json``.

``--smoke`` is the short form CI runs so the harness cannot rot: one small
enqueue-and-drain per backend that is reachable (figures not meaningful); it
fails if a workload fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import report, startup
from .orchestrate import (
    DEFAULT_PG,
    RESULTS,
    WORKLOADS,
    log,
    machine_info,
    metric,
    reachable,
    run_session,
    server_versions,
    sessions_for,
    source_state,
)
from .orchestrate import FULL_SIZES as COMPARISON_SIZES
from .peers.systems import SYSTEMS

#: Conveyor alone drains every backlog to the end: no time cap.
FULL_SIZES: dict[str, Any] = {**COMPARISON_SIZES, "cap_s": None}
SMOKE_SIZES: dict[str, Any] = {**FULL_SIZES, "drain": 1000, "cap_s": 20.0}


def redis_base() -> str:
    """Conveyor's Redis namespaces are key prefixes, so any database will do (default: the test one)."""
    return os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def start_up(backend: str, url: str | None, spawns: int, processes: int) -> dict[str, Any]:
    """Worker start-up on ``backend`` (median of ``spawns``), logged; an ``error`` entry if it failed."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = url or f"sqlite:///{Path(tmp) / 'startup.db'}"
            got = startup.measure(base, spawns, processes)
    except Exception as exc:  # noqa: BLE001 - reported in the results, the other figures still count
        log(f"conveyor-{backend} start-up ({processes} processes): FAILED: {exc}")
        return {"processes": processes, "error": str(exc)}
    log(f"conveyor-{backend} start-up ({processes} processes): median {got['median_s']:.3f}s")
    return got


def main(argv: list[str] | None = None) -> int:
    """Run the workloads on each backend; print the table; non-zero if nothing ran or a workload failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="one small enqueue+drain per backend, for CI")
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--sizes", default="{}", help="JSON overriding the sizes")
    parser.add_argument("--spawns", type=int, default=5, help="start-ups timed per backend (0: none)")
    args = parser.parse_args(argv)
    sizes = {**(SMOKE_SIZES if args.smoke else FULL_SIZES), **json.loads(args.sizes)}
    workloads = ["enqueue", "drain"] if args.smoke else [w for w in args.workloads.split(",") if w]
    sessions = sessions_for(workloads)
    redis_url = redis_base()
    pg_dsn = DEFAULT_PG
    started = time.time()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": machine_info(),
        "conveyor": source_state(),
        "servers": {},
        "sizes": sizes,
        "runs": args.runs,
        "workloads": workloads,
        "systems": {},
    }
    failures = 0
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        key = f"conveyor-{backend}"
        if key not in SYSTEMS:
            raise SystemExit(f"unknown backend {backend!r}: sqlite, postgres or redis")
        url = {"redis": redis_url, "postgres": pg_dsn}.get(backend)
        if url and not reachable(url, 6379 if backend == "redis" else 5432):
            log(f"skipping {backend}: not reachable here")
            results["systems"][key] = {"label": SYSTEMS[key].label, "skipped": "not reachable"}
            continue
        entry: dict[str, Any] = {"label": SYSTEMS[key].label, "engine": backend, "runs": {}, "errors": []}
        described = run_session(sys.executable, key, "throughput", sizes, redis_url, pg_dsn, describe=True)
        entry["describe"] = described.get("describe", {})
        for run in range(1, args.runs + 1):
            for session in sessions:
                got = run_session(sys.executable, key, session, sizes, redis_url, pg_dsn, timeout=600)
                got["run"] = run
                entry["runs"].setdefault(session, []).append(got)
                if "error" in got:
                    failures += 1
                    entry["errors"].append(got["error"])
                    log(f"{key} {session}: FAILED\n{got['error']}")
                else:
                    log(f"{key} {session}: done in {got['elapsed_s']}s")
        if "drain" in workloads and not args.smoke:
            # One worker process too: what a single core drains, and the worker's memory.
            os.environ["BENCH_CONVEYOR_PROCESSES"] = "1"
            try:
                one = run_session(sys.executable, key, "throughput", sizes, redis_url, pg_dsn, timeout=600)
            finally:
                del os.environ["BENCH_CONVEYOR_PROCESSES"]
            if "error" in one:
                failures += 1
                entry["errors"].append(one["error"])
            measured = one.get("result", {})
            entry["one_process"] = {
                "drain_jobs_per_s": metric(measured, "drain"),
                "worker_peak_rss_mb": measured.get("drain", {}).get("worker_peak_rss_mb"),
            }
        spawns = min(args.spawns, 1) if args.smoke else args.spawns
        for processes in (1,) if args.smoke else (1, 2):
            if spawns > 0:
                entry.setdefault("startup", []).append(start_up(backend, url, spawns, processes))
        results["systems"][key] = entry
    results["servers"] = server_versions(redis_url if reachable(redis_url, 6379) else None, pg_dsn)
    results["elapsed_s"] = round(time.time() - started, 1)
    report.print_summary(results)
    report.print_worker_costs(results)
    for entry in results["systems"].values():
        if "one_process" in entry:
            one = entry["one_process"]
            drain = one["drain_jobs_per_s"]
            rss = one["worker_peak_rss_mb"]
            print(
                f"{entry['label']:<28} one worker process: drain "
                f"{'-' if drain is None else f'{drain:,.0f}'} jobs/s, worker peak RSS "
                f"{'-' if rss is None else f'{rss:.0f}'} MB ({results['machine'].get('cores')} cores)"
            )
    ran = [e for e in results["systems"].values() if "runs" in e]
    if not args.smoke:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "latest.json").write_text(json.dumps(results, indent=1))
    return 0 if ran and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
