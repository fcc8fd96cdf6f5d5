"""``make bench``: Conveyor's figures on each available backend, side by side in one run.

Writes a table to stdout and JSON to ``bench/results/latest.json``. ``--smoke`` is
the short form CI runs so the harness cannot rot (small counts; figures not
meaningful).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from . import conveyor_bench as cb

RESULTS = Path(__file__).parent / "results"


def run_backend(name: str, tmp: str, sizes: dict[str, int]) -> dict[str, Any]:
    """Every workload on one backend, each in a fresh namespace of its own."""
    figures: dict[str, Any] = {"backend": name}

    def fresh(workload: str) -> str:
        url = backend_url(name, tmp, workload)
        assert url is not None
        return url

    figures["enqueue_many_jobs_per_s"] = cb.measure_enqueue(fresh("enqueue"), sizes["enqueue"])
    one = cb.measure_drain(fresh("drain1"), sizes["drain"], processes=1)
    figures["drain_1proc_jobs_per_s"] = one.jobs_per_s
    figures["worker_peak_rss_mb"] = one.peak_rss_mb
    two = cb.measure_drain(fresh("drain2"), sizes["drain"], processes=2)
    figures["drain_2proc_jobs_per_s"] = two.jobs_per_s
    p50, p99 = cb.measure_pickup(fresh("pickup"), sizes["pickup"])
    figures["pickup_p50_ms"], figures["pickup_p99_ms"] = p50, p99
    for workload in ("enqueue", "drain1", "drain2", "pickup"):
        drop_namespace(name, fresh(workload))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for CI")
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    args = parser.parse_args(argv)
    sizes = (
        {"enqueue": 2000, "drain": 2000, "pickup": 30}
        if args.smoke
        else {"enqueue": 20000, "drain": 20000, "pickup": 500}
    )
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        for name in wanted:
            if backend_url(name, tmp, "probe") is None:
                print(f"skipping {name}: not available here", file=sys.stderr)
                continue
            started = time.monotonic()
            rows.append(run_backend(name, tmp, sizes))
            print(f"{name}: done in {time.monotonic() - started:.0f}s", file=sys.stderr)
    report = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sizes": sizes,
        "results": rows,
    }
    show(report)
    if not args.smoke:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    return 0 if rows else 1


def backend_url(name: str, tmp: str, workload: str) -> str | None:
    """A URL for the namespace of one workload on ``name``, or None when it is not reachable."""
    import socket

    if name == "sqlite":
        return f"sqlite:///{Path(tmp) / workload}.db"
    env = {"postgres": "CONVEYOR_TEST_POSTGRES_URL", "redis": "CONVEYOR_TEST_REDIS_URL"}[name]
    default = {"postgres": "postgresql://postgres@127.0.0.1:5432/test", "redis": "redis://127.0.0.1:6379/0"}
    base = os.environ.get(env, default[name])
    port = {"postgres": 5432, "redis": 6379}[name]
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return None
    tag = f"bench{os.getpid()}_{workload}"
    return f"{base}?{'schema' if name == 'postgres' else 'prefix'}={tag}"


def drop_namespace(name: str, url: str) -> None:
    """Remove what a workload stored (the SQLite files go with the temporary directory)."""
    from urllib.parse import parse_qs, urlsplit

    if name == "sqlite":
        return
    parts = urlsplit(url)
    tag = parse_qs(parts.query)["schema" if name == "postgres" else "prefix"][0]
    base = url.split("?")[0]
    if name == "postgres":
        import psycopg
        from psycopg import sql

        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tag)))
    else:
        import redis

        client = redis.Redis.from_url(base)
        for pattern in (f"{tag}*", f"{{{tag}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        client.close()


def show(report: dict[str, Any]) -> None:
    table = Table(title=f"Conveyor on {report['machine']['cores']} cores (sizes {report['sizes']})")
    columns = [
        ("backend", "backend", "{}"),
        ("enqueue_many jobs/s", "enqueue_many_jobs_per_s", "{:,.0f}"),
        ("drain 1 proc jobs/s", "drain_1proc_jobs_per_s", "{:,.0f}"),
        ("drain 2 procs jobs/s", "drain_2proc_jobs_per_s", "{:,.0f}"),
        ("pickup p50 ms", "pickup_p50_ms", "{:.1f}"),
        ("pickup p99 ms", "pickup_p99_ms", "{:.1f}"),
        ("worker RSS MB", "worker_peak_rss_mb", "{:.0f}"),
    ]
    for title, _, _ in columns:
        table.add_column(title, justify="right")
    for row in report["results"]:
        table.add_row(*(fmt.format(row[key]) if row.get(key) is not None else "-" for _, key, fmt in columns))
    Console().print(table)
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
