"""RQ: SimpleWorker processes (no fork per job), bulk ``enqueue_many``.

RQ runs one job at a time per worker process, so its concurrency is its number
of worker processes: 2 for the no-op and retry workloads, 20 for the I/O
workload (the only way RQ reaches 20 jobs in flight).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from redis import Redis
from rq import Queue, Retry

from . import common
from .base import Adapter, Namespace, WorkerPlan, chunks, flush_redis_db

NS = Namespace.from_env() if "BENCH_OUT" in os.environ else None


def flaky(n: int) -> None:
    """Every fifth job fails its first attempt; retried at once."""
    common.flaky(n)


class RQAdapter(Adapter):
    """RQ on Redis."""

    key = "rq"
    label = "RQ (Redis)"
    engine = "redis"
    packages = ("rq", "redis", "hiredis")
    enqueue_method = "Queue.enqueue_many (one pipeline per 1,000 jobs)"
    retry_method = "Retry(max=1) (interval 0: requeued at once)"

    def setup(self) -> None:
        """Connect."""
        self.redis = Redis.from_url(self.ns.redis_url)
        self.queue = Queue(self.ns.tag, connection=self.redis)

    def teardown(self) -> None:
        """Empty the session's Redis database."""
        self.redis.close()
        flush_redis_db(self.ns.redis_url)

    def _bulk(self, fn: Any, n: int, args: Any = None, **options: Any) -> None:
        done = 0
        for size in chunks(n):
            self.queue.enqueue_many(
                [
                    Queue.prepare_data(fn, args=args(i) if args else None, **options)
                    for i in range(done, done + size)
                ]
            )
            done += size

    def enqueue_noop(self, n: int) -> None:
        """Bulk."""
        self._bulk(common.noop, n)

    def enqueue_io(self, n: int) -> None:
        """Bulk."""
        self._bulk(common.io_sync, n)

    def enqueue_flaky(self, n: int) -> None:
        """Bulk, each with Retry(max=1)."""
        self._bulk(flaky, n, lambda i: (i,), retry=Retry(max=1))

    def send_pickup(self, sent_at: float) -> None:
        """One enqueue call."""
        self.queue.enqueue(common.pickup, sent_at)

    def workers(self, kind: str) -> WorkerPlan:
        """``rq worker -w rq.worker.SimpleWorker``: 2 processes, or 20 for I/O."""
        count = 20 if kind == "io" else 2
        command = [
            sys.executable, "-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker",
            "--url", self.ns.redis_url, "--quiet", self.ns.tag,
        ]  # fmt: skip
        return WorkerPlan([command] * count, count, count, f"{count} x rq worker -w rq.worker.SimpleWorker")


def make_adapter(key: str) -> Any:
    """The RQ adapter."""
    return RQAdapter()
