"""What observability costs: drain throughput with worker metrics (and tracing) on and off.

    python -m bench.observability [--jobs 20000] [--rounds 3] [--backends sqlite,postgres,redis,memory]

One worker process (this one), a burst drain of no-op jobs, alternating "off"
and "on" rounds on fresh stores in the same run so the machine's load hits both
alike; prints the best round of each and their ratio (the contract: on >= 90 %
of off). "On" is a Worker with :class:`~conveyor.worker.metrics.WorkerMetrics`
and, when the OpenTelemetry SDK is installed, a tracer provider recording every
span (exported to nowhere, so the figure is the instrumentation's own cost).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
        yield f"{REDIS}?prefix=obsbench:{tag}"
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"obsbench:{tag}*", count=1000):
            client.delete(key)


def tracing_on() -> bool:
    """Install an SDK tracer provider that records every span (no exporter); False without the SDK."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return False
    trace.set_tracer_provider(TracerProvider())
    return True


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
    """Alternate off/on rounds per backend; print the best of each and the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres,redis,memory")
    args = parser.parse_args(argv)
    traced = tracing_on()
    results: dict[str, Any] = {"jobs": args.jobs, "rounds": args.rounds, "tracing": traced, "backends": {}}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        off: list[float] = []
        on: list[float] = []
        for _ in range(args.rounds):
            off.append(drain_rate(backend, args.jobs, observed=False))
            on.append(drain_rate(backend, args.jobs, observed=True))
        ratio = max(on) / max(off)
        results["backends"][backend] = {"off": off, "on": on, "ratio": ratio}
        print(
            f"{backend:<9} drain {args.jobs:,} jobs: off {max(off):>8,.0f}/s  "
            f"on (metrics{' + tracing' if traced else ''}) {max(on):>8,.0f}/s  ratio {ratio:.1%}",
            flush=True,
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
