"""What observability costs: drain throughput with worker metrics and tracing on and off.

    python -m bench.observability [--jobs 20000] [--rounds 3] [--backends sqlite,postgres,redis,memory]

A burst drain of no-op jobs by one Worker (concurrency 8) in a fresh process per
round, on a fresh store, the three set-ups taking turns in the same run so the
machine's load hits them alike:

- ``off``: OpenTelemetry hidden (as if not installed), no worker metrics;
- ``metrics``: the worker's Prometheus metrics recorded (as with --metrics-port),
  OpenTelemetry hidden;
- ``metrics+tracing``: metrics, and the OpenTelemetry SDK recording every span
  (a tracer provider with no exporter: the figure is the instrumentation's own
  cost, not an exporter's);
- ``metrics+tracing 10%``: the same with the SDK sampling one trace in ten
  (``ParentBased(TraceIdRatioBased(0.1))``), as busy services usually run it.

Prints the best round of each and its ratio to ``off``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import conveyor
from conveyor.worker.metrics import WorkerMetrics

PG = os.environ.get("CONVEYOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def fresh_url(backend: str) -> Iterator[str]:
    """An empty store on ``backend``, removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
    elif backend == "memory":
        from conveyor.backends.memory import drop_store

        yield f"memory://obsbench{tag}"
        drop_store(f"obsbench{tag}")
    elif backend == "postgres":
        yield f"{PG}?schema=obsbench_{tag}"
        import psycopg

        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS obsbench_{tag} CASCADE")  # type: ignore[arg-type]
    else:
        yield f"{REDIS}?prefix=obsbench-{tag}"
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"*obsbench-{tag}*", count=1000):
            client.delete(key)


HIDE_OTEL = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Hide())
"""
SETUPS = ("off", "metrics", "metrics+tracing", "metrics+tracing 10%")


def tracing_on(ratio: float = 1.0) -> None:
    """An SDK tracer provider that records ``ratio`` of the traces and exports none."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    sampler = None if ratio >= 1.0 else ParentBased(TraceIdRatioBased(ratio))
    trace.set_tracer_provider(TracerProvider(sampler=sampler))


def one_round(backend: str, setup: str, jobs: int) -> float:
    """Drain rate of one round in a fresh process (a tracer provider is set once per process)."""
    hide = HIDE_OTEL if setup in ("off", "metrics") else ""  # as if OpenTelemetry were not installed
    code = f"{hide}\nfrom bench.observability import round_main\nround_main({backend!r}, {setup!r}, {jobs})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{backend} {setup}: {done.stderr.strip()}")
    return float(done.stdout.strip().splitlines()[-1])


def round_main(backend: str, setup: str, jobs: int) -> None:
    """In the round's process: set up, drain, print the rate."""
    if setup.startswith("metrics+tracing"):
        tracing_on(0.1 if setup.endswith("10%") else 1.0)
    print(drain_rate(backend, jobs, observed=setup != "off"))


def drain_rate(backend: str, jobs: int, observed: bool) -> float:
    """Jobs per second a burst drain of ``jobs`` no-op jobs reaches, metrics on or off."""
    with fresh_url(backend) as url:
        app = conveyor.App(url)

        @app.task()
        def noop(n: int) -> None:
            return None

        for start in range(0, jobs, 5000):
            app.enqueue_many([{"task": "noop", "args": [i]} for i in range(start, min(jobs, start + 5000))])
        worker = conveyor.Worker(
            app,
            concurrency=8,
            prefetch=64,
            install_signal_handlers=False,
            metrics=WorkerMetrics() if observed else None,
        )
        began = time.perf_counter()
        worker.run(burst=True)
        elapsed = time.perf_counter() - began
        done = app.stats()["counts"]["completed"]
        app.close()
        if done != jobs:
            raise SystemExit(f"{backend}: drained {done} of {jobs} jobs")
        return jobs / elapsed


def main(argv: list[str] | None = None) -> int:
    """Alternate the set-ups per backend; print the best of each and the ratios."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres,redis,memory")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"jobs": args.jobs, "rounds": args.rounds, "backends": {}}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        rates: dict[str, list[float]] = {setup: [] for setup in SETUPS}
        for _ in range(args.rounds):
            for setup in SETUPS:
                rates[setup].append(one_round(backend, setup, args.jobs))
        best = {setup: max(r) for setup, r in rates.items()}
        results["backends"][backend] = {"rates": rates, "best": best}
        print(
            f"{backend:<9} drain {args.jobs:,} jobs (best of {args.rounds}): off {best['off']:>7,.0f}/s   "
            f"metrics {best['metrics']:>7,.0f}/s ({best['metrics'] / best['off']:.0%})   "
            f"metrics+tracing {best['metrics+tracing']:>7,.0f}/s "
            f"({best['metrics+tracing'] / best['off']:.0%})   "
            f"sampled 10% {best['metrics+tracing 10%']:>7,.0f}/s "
            f"({best['metrics+tracing 10%'] / best['off']:.0%})",
            flush=True,
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
