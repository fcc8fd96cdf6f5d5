"""What a /metrics scrape costs on PostgreSQL with a million finished jobs.

    python -m bench.scrape [--rows 1000000] [--queues 4]

Fills a fresh schema with ``--rows`` completed jobs (plus a few thousand waiting,
running and failed ones) by one INSERT ... SELECT, lets ANALYZE run as autovacuum
would, then times ``stats()`` (counts every row) against ``queue_gauges()`` (what
``conveyor serve``'s /metrics reads: exact counts of the live states and the
failure table, statistics for the finished ones) and shows how far the estimates
are from the truth.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg

from conveyor.backends.postgres import PostgresBackend

PG = os.environ.get("CONVEYOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

FILL = """
INSERT INTO SCHEMA.jobs (id, task, queue, state, payload, run_at, created_at, finished_at,
                         attempt, max_attempts)
SELECT lpad(to_hex(g), 32, '0'), 'work', 'q' || (g % QUEUES),
       CASE WHEN g % 500 = 0 THEN 'failed' WHEN g % 250 = 0 THEN 'pending'
            WHEN g % 1000 = 1 THEN 'cancelled' ELSE 'completed' END,
       '{"args":[],"kwargs":{}}', now() - interval '1 hour', now() - interval '1 hour',
       CASE WHEN g % 250 = 0 AND g % 500 <> 0 THEN NULL ELSE now() END, 1, 4
FROM generate_series(1, ROWS) AS g
"""


def timed(fn: object, runs: int = 5) -> float:
    """Median seconds of ``runs`` calls."""
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    """Fill, analyse, time both reads, compare the counts."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queues", type=int, default=4)
    args = parser.parse_args(argv)
    schema = f"scrape_{uuid.uuid4().hex[:8]}"
    backend = PostgresBackend(f"{PG}?schema={schema}")
    try:
        backend.migrate()
        with psycopg.connect(PG, autocommit=True) as conn:
            began = time.perf_counter()
            # Our own text with numbers and a generated name: no parameters, so no % escaping.
            fill = FILL.replace("SCHEMA", f'"{schema}"').replace("QUEUES", str(args.queues))
            conn.execute(fill.replace("ROWS", str(args.rows)))  # type: ignore[arg-type]
            conn.execute(f'VACUUM ANALYZE "{schema}".jobs')  # type: ignore[arg-type]
            print(f"filled {args.rows:,} rows in {time.perf_counter() - began:.1f}s")
        stats_s = timed(backend.stats)
        gauges_s = timed(backend.queue_gauges)
        exact = backend.stats()
        gauges = backend.queue_gauges()
        print(f"stats() (every row counted):        {stats_s * 1000:8.1f} ms")
        estimated = ", ".join(sorted(gauges.estimated)) or "none"
        print(f"queue_gauges() (/metrics):          {gauges_s * 1000:8.1f} ms  (estimated: {estimated})")
        worst = 0.0
        for queue, counts in exact.queues.items():
            for state, n in counts.items():
                got = gauges.queues[queue].counts[state]
                error = abs(got - n) / n if n else float(got != 0)
                worst = max(worst, error)
                if state in ("completed", "failed", "pending"):
                    print(f"  {queue:<4} {state:<10} exact {n:>9,}  gauge {got:>9,}")
        print(f"largest relative error of any count: {worst:.2%}")
    finally:
        backend.close()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
