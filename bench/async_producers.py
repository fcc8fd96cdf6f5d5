"""Async producers against sync ones, in the same run, per backend.

``python -m bench.async_producers [--jobs 2000] [--backends sqlite,postgres,redis,memory]``:
``aenqueue`` from 100 concurrent coroutines vs ``enqueue`` one at a time from 100
threads, and ``aenqueue_many`` vs ``enqueue_many`` (batches of 500). Prints jobs/s and
the ratios the targets are stated in (>= 50 % and within 20 %). Each backend's run has a
store of its own, removed afterwards (``bench.stores``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import conveyor

from .stores import scratch_store

#: Where each backend's store goes (a namespace of its own under these, removed afterwards).
URLS = {
    "sqlite": lambda d: f"sqlite:///{d / 'bench.db'}",
    "postgres": lambda d: "postgresql://postgres@127.0.0.1:5432/test?schema=abench",
    "redis": lambda d: "redis://127.0.0.1:6379/0?prefix=abench",
    "memory": lambda d: "memory://abench",
}
CONCURRENCY = 100
BATCH = 500


def measure(url: str, jobs: int) -> dict[str, float]:
    app = conveyor.App(url)
    try:
        return _measure(app, jobs)
    finally:
        app.close()


def _measure(app: conveyor.App, jobs: int) -> dict[str, float]:
    app.declare("noop")
    app.backend.migrate()
    app.enqueue("noop")  # warm connections
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(lambda i: app.enqueue("noop", args=[i]), range(jobs)))
    sync_one = jobs / (time.perf_counter() - started)
    items = [{"task": "noop", "args": [i]} for i in range(jobs)]
    started = time.perf_counter()
    for i in range(0, jobs, BATCH):
        app.enqueue_many(items[i : i + BATCH])
    sync_many = jobs / (time.perf_counter() - started)

    async def run_async() -> tuple[float, float]:
        await app.aenqueue("noop")  # warm the async side
        queue = iter(range(jobs))

        async def producer() -> None:
            for i in queue:
                await app.aenqueue("noop", args=[i])

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(CONCURRENCY)))
        async_one = jobs / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(0, jobs, BATCH):
            await app.aenqueue_many(items[i : i + BATCH])
        async_many = jobs / (time.perf_counter() - started)
        await app.aclose()
        return async_one, async_many

    async_one, async_many = asyncio.run(run_async())
    return {
        "enqueue": sync_one,
        "aenqueue": async_one,
        "enqueue_many": sync_many,
        "aenqueue_many": async_many,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite,postgres,redis,memory")
    args = parser.parse_args()
    header = ("backend", "enqueue/s", "aenqueue/s", "ratio", "many/s", "amany/s", "ratio")
    print("{:9} {:>10} {:>11} {:>6} {:>9} {:>9} {:>6}".format(*header))
    with tempfile.TemporaryDirectory() as folder:
        for name in args.backends.split(","):
            with scratch_store(URLS[name](Path(folder))) as url:
                r = measure(url, args.jobs)
            one, many = r["aenqueue"] / r["enqueue"], r["aenqueue_many"] / r["enqueue_many"]
            print(
                f"{name:9} {r['enqueue']:10.0f} {r['aenqueue']:11.0f} {one:6.2f} "
                f"{r['enqueue_many']:9.0f} {r['aenqueue_many']:9.0f} {many:6.2f}"
            )


if __name__ == "__main__":
    main()
