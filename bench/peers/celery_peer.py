"""Celery with the Redis broker: two workers of 4 threads for tiny jobs (faster than the default
prefork pool here, for drain and pickup alike), two of 10 threads for I/O, no result backend.

Workers start with ``--without-gossip --without-mingle --without-heartbeat``, as
Celery's optimisation guide suggests for throughput, and the default prefetch
multiplier (4). Acknowledgement is Celery's default (early: at-most-once).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery

from . import common
from .base import Adapter, Namespace, WorkerPlan, flush_redis_db

NS = Namespace.from_env() if "BENCH_OUT" in os.environ else None

app = Celery("bench", broker=NS.redis_url if NS else "redis://127.0.0.1:6379/15")
app.conf.update(
    task_default_queue=NS.tag if NS else "bench",
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop() -> None:
    """The no-op job."""
    common.noop()


@app.task(name="pickup")
def pickup(sent_at: float) -> None:
    """The latency probe."""
    common.pickup(sent_at)


@app.task(name="io")
def io() -> None:
    """5 ms of simulated I/O."""
    common.io_sync()


@app.task(name="flaky", autoretry_for=(common.FlakyFailure,), max_retries=1, default_retry_delay=0)
def flaky(n: int) -> None:
    """Every fifth job fails its first attempt; retried at once."""
    common.flaky(n)


class CeleryAdapter(Adapter):
    """Celery 5 on Redis."""

    key = "celery"
    label = "Celery (Redis)"
    engine = "redis"
    packages = ("celery", "kombu", "redis", "hiredis")
    enqueue_method = "apply_async in a loop on one producer (Celery has no bulk enqueue)"
    retry_method = "autoretry_for=(FlakyFailure,), max_retries=1, default_retry_delay=0"

    def teardown(self) -> None:
        """Empty the session's Redis database."""
        flush_redis_db(self.ns.redis_url)

    def _send(self, task: Any, n: int, args: Any = None) -> None:
        with app.producer_or_acquire() as producer:
            for i in range(n):
                task.apply_async(args=args(i) if args else None, producer=producer)

    def enqueue_noop(self, n: int) -> None:
        """One apply_async per job, on one producer."""
        self._send(noop, n)

    def enqueue_io(self, n: int) -> None:
        """One apply_async per job."""
        self._send(io, n)

    def enqueue_flaky(self, n: int) -> None:
        """One apply_async per job."""
        self._send(flaky, n, lambda i: (i,))

    def send_pickup(self, sent_at: float) -> None:
        """One delay() call."""
        pickup.delay(sent_at)

    def workers(self, kind: str) -> WorkerPlan:
        """Prefork 2 for tiny jobs; two worker processes with 10 threads each for I/O."""
        base = [
            sys.executable, "-m", "celery", "-A", "bench.peers.celery_peer", "worker",
            "-Q", self.ns.tag, "-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if kind == "io":
            commands = [[*base, "-P", "threads", "-c", "10", "-n", f"w{i}@%h"] for i in (1, 2)]
            return WorkerPlan(commands, 2, 20, "2 workers x -P threads -c 10")
        pool, count = os.environ.get("BENCH_CELERY_POOL", "threads,4").split(",")  # overridable for tuning
        if pool == "prefork":
            return WorkerPlan(
                [[*base, "-P", "prefork", "-c", count]], int(count), int(count), f"-P prefork -c {count}"
            )
        commands = [[*base, "-P", pool, "-c", count, "-n", f"w{i}@%h"] for i in (1, 2)]
        return WorkerPlan(commands, 2, 2 * int(count), f"2 workers x -P {pool} -c {count}")


def make_adapter(key: str) -> Any:
    """The Celery adapter."""
    return CeleryAdapter()
