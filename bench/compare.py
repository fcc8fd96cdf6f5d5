"""``make bench-peers``: Conveyor against its Python peers, identical workloads, same machine, same run.

    python -m bench.compare [--quick] [--runs 3] [--systems celery,rq,...] [--workloads drain,latency]

Each (system, workload) is measured ``--runs`` times, runs interleaved across
systems so that noise on this shared machine spreads over everyone; the report
uses medians. Peers run from the peers venv (``--peers-python``, default
``.venv-peers/bin/python``); Conveyor from this interpreter.

Writes ``bench/results/compare-<time>.json`` (every run's figures, versions and
configuration) and ``compare-latest.json``; rewrites the generated part of
``docs/benchmarks.md`` and the charts in ``docs/img/`` unless ``--no-docs``.
``--report-only FILE`` rebuilds the docs from a results file without running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import report
from .orchestrate import (
    DEFAULT_PEERS_PYTHON,
    DEFAULT_PG,
    DEFAULT_REDIS,
    FULL_SIZES,
    RESULTS,
    ROOT,
    WORKLOADS,
    available,
    log,
    machine_info,
    pick_redis_db,
    run_session,
    server_versions,
    sessions_for,
    source_state,
)
from .peers.systems import SYSTEMS

QUICK_SIZES: dict[str, Any] = {
    "drain": 5000,
    "latency": 100,
    "latency_rate": 100,
    "io": 2000,
    "retry": 500,
    "cap_s": 5.0,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a fast sanity pass")
    parser.add_argument("--runs", type=int, help="runs per (system, workload) [3; 1 with --quick]")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, default: all")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, default: all")
    parser.add_argument("--sizes", default="{}", help="JSON overriding the sizes, e.g. '{\"drain\": 50000}'")
    parser.add_argument("--peers-python", default=str(DEFAULT_PEERS_PYTHON))
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="Redis server URL without a database")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG)
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md and docs/img")
    parser.add_argument("--report-only", metavar="FILE", help="rebuild the docs from a results file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, save the results, write the report and charts."""
    args = parse_args(argv)
    peers_python = Path(args.peers_python)
    if args.report_only:
        results = json.loads(Path(args.report_only).read_text())
        publish(results, peers_python)
        return 0
    sizes = {**(QUICK_SIZES if args.quick else FULL_SIZES), **json.loads(args.sizes)}
    runs = args.runs or (1 if args.quick else 3)
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"unknown workload(s) {sorted(unknown)}; known: {', '.join(WORKLOADS)}")
    keys = [k for k in args.systems.split(",") if k]
    unknown = set(keys) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown system(s) {sorted(unknown)}; known: {', '.join(SYSTEMS)}")

    redis_url = pick_redis_db(args.redis)
    started = time.time()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": machine_info(),
        "conveyor": source_state(),
        "servers": server_versions(redis_url, args.pg_dsn),
        "sizes": sizes,
        "runs": runs,
        "workloads": workloads,
        "systems": {},
    }
    sessions = sessions_for(workloads)
    plan: list[str] = []
    for key in keys:
        why = available(key, redis_url, args.pg_dsn, peers_python)
        if why:
            log(f"skipping {key}: {why}")
            results["systems"][key] = {"label": SYSTEMS[key].label, "skipped": why}
            continue
        python = sys.executable if SYSTEMS[key].is_conveyor else str(peers_python)
        described = run_session(python, key, "throughput", sizes, redis_url or "", args.pg_dsn, describe=True)
        entry: dict[str, Any] = {
            "label": SYSTEMS[key].label,
            "engine": SYSTEMS[key].engine,
            "describe": described.get("describe", {}),
            "runs": {s: [] for s in sessions},
            "errors": [],
        }
        if "error" in described:
            entry["errors"].append(described["error"])
        results["systems"][key] = entry
        plan.append(key)

    for run in range(1, runs + 1):
        for key in plan:
            python = sys.executable if SYSTEMS[key].is_conveyor else str(peers_python)
            for session in sessions:
                report_ = run_session(python, key, session, sizes, redis_url or "", args.pg_dsn)
                report_["run"] = run
                entry = results["systems"][key]
                if "error" in report_:
                    log(f"run {run} {key} {session}: FAILED {report_['error'].splitlines()[0]}")
                    entry["errors"].append(f"run {run} {session}: {report_['error']}")
                else:
                    log(f"run {run} {key} {session}: {summary(report_['result'])} ({report_['elapsed_s']}s)")
                entry["runs"][session].append(report_)
        save(results, started, partial=run < runs)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results["elapsed_s"] = round(time.time() - started, 1)
    results["machine"]["load_average_end"] = machine_info()["load_average"]
    path = save(results, started, partial=False)
    log(f"results: {path} ({results['elapsed_s']:.0f}s)")
    report.print_summary(results)
    if not args.no_docs:
        publish(results, peers_python)
    return 0


def summary(result: dict[str, Any]) -> str:
    """One short line for the progress log."""
    parts = []
    for section, key, unit in (
        ("enqueue", "jobs_per_s", "enq/s"),
        ("drain", "jobs_per_s", "drain/s"),
        ("latency", "p50_ms", "p50 ms"),
        ("latency", "p99_ms", "p99 ms"),
        ("io", "jobs_per_s", "io/s"),
        ("retry", "jobs_per_s", "retry/s"),
    ):
        value = result.get(section, {}).get(key)
        if value is not None:
            parts.append(f"{value:,.1f} {unit}")
    if result.get("drain", {}).get("capped") or result.get("io", {}).get("capped"):
        parts.append("(capped)")
    if "retry" in result:
        parts.append(f"{result['retry']['completed']}/{result['retry']['jobs']} done")
    return ", ".join(parts)


def save(results: dict[str, Any], started: float, partial: bool) -> Path:
    """Write the results JSON (timestamped and ``compare-latest.json``)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    path = RESULTS / f"compare-{stamp}.json"
    text = json.dumps(results, indent=1)
    path.write_text(text)
    if not partial:
        (RESULTS / "compare-latest.json").write_text(text)
    return path


def publish(results: dict[str, Any], peers_python: Path) -> None:
    """Rewrite the generated section of docs/benchmarks.md and draw the charts."""
    doc = ROOT / "docs" / "benchmarks.md"
    report.write_doc(results, doc)
    log(f"wrote {doc.relative_to(ROOT)}")
    data = RESULTS / "charts-input.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps(report.chart_data(results)))
    python = str(peers_python) if peers_python.exists() else sys.executable
    done = subprocess.run(
        [python, "-m", "bench.charts", str(data), str(ROOT / "docs" / "img")], cwd=ROOT, check=False
    )
    if done.returncode:
        log("charts not drawn (matplotlib missing from the peers venv?)")


if __name__ == "__main__":
    sys.exit(main())
