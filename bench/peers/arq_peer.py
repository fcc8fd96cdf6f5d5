"""arq: asyncio workers polling a Redis sorted set.

arq reads up to ``max_jobs`` due jobs per poll and then sleeps ``poll_delay``
(default 0.5 s), so its throughput is bounded by ``max_jobs / poll_delay`` per
process and its pickup latency by the poll delay. We give it a 50 ms poll and
100 jobs per process for tiny jobs (the settings arq's docs suggest raising for
throughput), 10 per process for the 20-slot I/O workload.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from arq import Retry, create_pool
from arq.connections import RedisSettings

from . import common
from .base import AsyncAdapter, Namespace, WorkerPlan, flush_redis_db

NS = Namespace.from_env() if "BENCH_OUT" in os.environ else None
REDIS = RedisSettings.from_dsn(NS.redis_url if NS else "redis://127.0.0.1:6379/15")
QUEUE = NS.tag if NS else "bench"
POLL_DELAY = 0.05


async def noop(ctx: dict[str, Any]) -> None:
    """The no-op job."""
    common.noop()


async def pickup(ctx: dict[str, Any], sent_at: float) -> None:
    """The latency probe."""
    common.pickup(sent_at)


async def io(ctx: dict[str, Any]) -> None:
    """5 ms of simulated I/O."""
    await common.io_async()


async def flaky(ctx: dict[str, Any], n: int) -> None:
    """Every fifth job fails its first attempt; arq retries on its own ``Retry`` exception."""
    if common.first_attempt_fails(n):
        raise Retry(defer=0)
    common.record_id(n)


class WorkerSettings:
    """``arq bench.peers.arq_peer.WorkerSettings``; ``max_jobs`` from ``BENCH_ARQ_MAX_JOBS``."""

    functions = [noop, pickup, io, flaky]
    redis_settings = REDIS
    queue_name = QUEUE
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "10"))
    poll_delay = POLL_DELAY


class ArqAdapter(AsyncAdapter):
    """arq on Redis."""

    key = "arq"
    label = "arq (Redis)"
    engine = "redis"
    packages = ("arq", "redis", "hiredis")
    enqueue_method = "enqueue_job, 100 concurrent calls at a time (arq has no bulk enqueue)"
    retry_method = "the task raises arq.Retry(defer=0) (arq retries only on Retry)"

    def setup(self) -> None:
        """Open the arq pool."""
        self.pool = self.run(create_pool(REDIS, default_queue_name=QUEUE))

    def teardown(self) -> None:
        """Close the pool, empty the session's Redis database."""
        self.run(self.pool.aclose())
        flush_redis_db(self.ns.redis_url)

    def enqueue_noop(self, n: int) -> None:
        """Pipelined by concurrency."""
        self.run(self.gather_chunks(lambda i: self.pool.enqueue_job("noop"), n))

    def enqueue_io(self, n: int) -> None:
        """Pipelined by concurrency."""
        self.run(self.gather_chunks(lambda i: self.pool.enqueue_job("io"), n))

    def enqueue_flaky(self, n: int) -> None:
        """Pipelined by concurrency."""
        self.run(self.gather_chunks(lambda i: self.pool.enqueue_job("flaky", i), n))

    def send_pickup(self, sent_at: float) -> None:
        """One enqueue_job."""
        self.run(self.pool.enqueue_job("pickup", sent_at))

    def workers(self, kind: str) -> WorkerPlan:
        """Two ``arq`` processes."""
        procs, max_jobs = 2, 10
        if kind != "io":
            procs, max_jobs = (int(x) for x in os.environ.get("BENCH_ARQ_PLAN", "2,100").split(","))  # tuning
        command = [sys.executable, "-m", "arq", "bench.peers.arq_peer.WorkerSettings"]
        return WorkerPlan(
            [command] * procs,
            procs,
            procs * max_jobs,
            f"{procs} processes x max_jobs={max_jobs}, poll_delay={POLL_DELAY * 1000:.0f} ms",
            env={"BENCH_ARQ_MAX_JOBS": str(max_jobs)},
        )


def make_adapter(key: str) -> Any:
    """The arq adapter."""
    return ArqAdapter()
