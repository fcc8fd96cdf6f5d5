"""Huey on Redis (``RedisHuey``, blocking pops) or SQLite (``SqliteHuey``, polled every 10 ms).

Two consumers of 4 threads each for tiny jobs (the fastest drain we found;
Huey's docs call threads the safest choice), ``-k process -w 2`` for the latency
probes (the fastest pickup), two consumers of 10 threads each for I/O. Huey
acknowledges a task when it dequeues it (no at-least-once delivery: a worker
that dies mid-job loses it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey

from . import common
from .base import Adapter, Namespace, WorkerPlan, flush_redis_db

NS = Namespace.from_env() if "BENCH_OUT" in os.environ else None
ENGINE = os.environ.get("BENCH_ENGINE", "redis")

if ENGINE == "sqlite":
    huey: Any = SqliteHuey("bench", filename=str(NS.sqlite_dir / "huey.db") if NS else "huey.db")
else:
    huey = RedisHuey(NS.tag if NS else "bench", url=NS.redis_url if NS else "redis://127.0.0.1:6379/15")


@huey.task()
def noop() -> None:
    """The no-op job."""
    common.noop()


@huey.task()
def pickup(sent_at: float) -> None:
    """The latency probe."""
    common.pickup(sent_at)


@huey.task()
def io() -> None:
    """5 ms of simulated I/O."""
    common.io_sync()


@huey.task(retries=1, retry_delay=0)
def flaky(n: int) -> None:
    """Every fifth job fails its first attempt; retried at once."""
    common.flaky(n)


class HueyAdapter(Adapter):
    """Huey 2 on Redis or SQLite."""

    packages = ("huey", "redis", "hiredis")
    enqueue_method = "one task call per job (Huey has no bulk enqueue)"
    retry_method = "@huey.task(retries=1, retry_delay=0)"

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.engine = ENGINE
        self.label = "Huey (SQLite)" if ENGINE == "sqlite" else "Huey (Redis)"
        if ENGINE == "sqlite":
            self.packages = ("huey",)

    def teardown(self) -> None:
        """Empty the session's Redis database (SQLite files go with the temporary directory)."""
        if self.engine == "redis":
            flush_redis_db(self.ns.redis_url)

    def enqueue_noop(self, n: int) -> None:
        """One call per job."""
        for _ in range(n):
            noop()

    def enqueue_io(self, n: int) -> None:
        """One call per job."""
        for _ in range(n):
            io()

    def enqueue_flaky(self, n: int) -> None:
        """One call per job."""
        for i in range(n):
            flaky(i)

    def send_pickup(self, sent_at: float) -> None:
        """One call."""
        pickup(sent_at)

    def workers(self, kind: str) -> WorkerPlan:
        """``-k process -w 2`` for tiny jobs, two ``-k thread -w 10`` consumers for I/O."""
        consumer = str(Path(sys.executable).parent / "huey_consumer")
        base = [sys.executable, consumer, "bench.peers.huey_peer.huey", "--no-periodic", "--quiet"]
        polling: list[str] = []
        if self.engine == "sqlite":
            polling = ["--delay", "0.01", "--max-delay", "0.01", "--backoff", "1"]
        poll_note = ", polled every 10 ms" if polling else ""
        if kind == "io":
            command = [*base, "-k", "thread", "-w", "10", *polling]
            return WorkerPlan([command, command], 2, 20, f"2 consumers x -k thread -w 10{poll_note}")
        # Threads drain tiny jobs fastest; processes pick an idle job up fastest: Huey gets the best of each.
        default = "process,2" if kind == "latency" else "thread,4"
        pool, count = os.environ.get("BENCH_HUEY_WORKERS", default).split(",")  # overridable for tuning
        if pool == "process":
            command = [*base, "-k", "process", "-w", count, *polling]
            return WorkerPlan([command], int(count), int(count), f"-k process -w {count}{poll_note}")
        command = [*base, "-k", pool, "-w", count, *polling]
        return WorkerPlan(
            [command, command], 2, 2 * int(count), f"2 consumers x -k {pool} -w {count}{poll_note}"
        )


def make_adapter(key: str) -> Any:
    """The Huey adapter for ``huey-sqlite`` or ``huey-redis``."""
    return HueyAdapter(key)
