"""SAQ (simple async queue) on Redis: ``saq bench.peers.saq_peer.settings --workers 2``.

Each worker process runs ``concurrency`` coroutines that each block on a Redis
pop, so an idle worker picks a job up at once.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from saq import Queue

from . import common
from .base import AsyncAdapter, Namespace, WorkerPlan, flush_redis_db

NS = Namespace.from_env() if "BENCH_OUT" in os.environ else None
QUEUE_NAME = NS.tag if NS else "bench"
REDIS_URL = NS.redis_url if NS else "redis://127.0.0.1:6379/15"


async def noop(ctx: dict[str, Any]) -> None:
    """The no-op job."""
    common.noop()


async def pickup(ctx: dict[str, Any], *, sent_at: float) -> None:
    """The latency probe."""
    common.pickup(sent_at)


async def io(ctx: dict[str, Any]) -> None:
    """5 ms of simulated I/O."""
    await common.io_async()


async def flaky(ctx: dict[str, Any], *, n: int) -> None:
    """Every fifth job fails its first attempt; retried at once."""
    common.flaky(n)


queue = Queue.from_url(REDIS_URL, name=QUEUE_NAME)

#: The worker settings SAQ's CLI loads; concurrency per process from ``BENCH_SAQ_CONCURRENCY``.
settings = {
    "queue": queue,
    "functions": [noop, pickup, io, flaky],
    "concurrency": int(os.environ.get("BENCH_SAQ_CONCURRENCY", "10")),
}


class SaqAdapter(AsyncAdapter):
    """SAQ on Redis."""

    key = "saq"
    label = "SAQ (Redis)"
    engine = "redis"
    packages = ("saq", "redis", "hiredis")
    enqueue_method = "queue.enqueue, 100 concurrent calls at a time (SAQ has no bulk enqueue)"
    retry_method = "enqueue(..., retries=2, retry_delay=0) (retries counts attempts)"

    def setup(self) -> None:
        """Connect."""
        self.run(queue.connect())

    def teardown(self) -> None:
        """Disconnect, empty the session's Redis database."""
        self.run(queue.disconnect())
        flush_redis_db(self.ns.redis_url)

    def enqueue_noop(self, n: int) -> None:
        """Pipelined by concurrency."""
        self.run(self.gather_chunks(lambda i: queue.enqueue("noop"), n))

    def enqueue_io(self, n: int) -> None:
        """Pipelined by concurrency."""
        self.run(self.gather_chunks(lambda i: queue.enqueue("io"), n))

    def enqueue_flaky(self, n: int) -> None:
        """Pipelined by concurrency."""
        self.run(self.gather_chunks(lambda i: queue.enqueue("flaky", n=i, retries=2, retry_delay=0.0), n))

    def send_pickup(self, sent_at: float) -> None:
        """One enqueue."""
        self.run(queue.enqueue("pickup", sent_at=sent_at))

    def workers(self, kind: str) -> WorkerPlan:
        """``--workers 2``; 50 coroutines per process for tiny jobs (faster than 10, 20, 100), 10 for I/O."""
        concurrency = 10 if kind == "io" else int(os.environ.get("BENCH_SAQ_TINY", "50"))  # tuning override
        command = [sys.executable, "-m", "saq", "bench.peers.saq_peer.settings", "--workers", "2", "--quiet"]
        return WorkerPlan(
            [command],
            2,
            2 * concurrency,
            f"--workers 2, concurrency {concurrency}",
            env={"BENCH_SAQ_CONCURRENCY": str(concurrency)},
        )


def make_adapter(key: str) -> Any:
    """The SAQ adapter."""
    return SaqAdapter()
