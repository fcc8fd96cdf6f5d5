"""Dramatiq with the Redis broker: ``dramatiq --processes 2 --threads N``.

Default middleware (age and time limits, retries, callbacks, pipelines); no
result backend. Acknowledgement is Dramatiq's default (after the job: at-least-once).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from . import common
from .base import Adapter, Namespace, WorkerPlan, flush_redis_db

NS = Namespace.from_env() if "BENCH_OUT" in os.environ else None
#: Worker threads per process for tiny jobs (Dramatiq's default is 8).
THREADS = int(os.environ.get("BENCH_DRAMATIQ_THREADS", "8"))

broker = RedisBroker(
    url=NS.redis_url if NS else "redis://127.0.0.1:6379/15", namespace=NS.tag if NS else "bench"
)
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def noop() -> None:
    """The no-op job."""
    common.noop()


@dramatiq.actor(max_retries=0)
def pickup(sent_at: float) -> None:
    """The latency probe."""
    common.pickup(sent_at)


@dramatiq.actor(max_retries=0)
def io() -> None:
    """5 ms of simulated I/O."""
    common.io_sync()


@dramatiq.actor(max_retries=1, min_backoff=0, max_backoff=0)
def flaky(n: int) -> None:
    """Every fifth job fails its first attempt; retried at once."""
    common.flaky(n)


class DramatiqAdapter(Adapter):
    """Dramatiq on Redis."""

    key = "dramatiq"
    label = "Dramatiq (Redis)"
    engine = "redis"
    packages = ("dramatiq", "redis", "hiredis")
    enqueue_method = "actor.send() in a loop (Dramatiq has no bulk enqueue)"
    retry_method = "@actor(max_retries=1, min_backoff=0, max_backoff=0)"

    def teardown(self) -> None:
        """Empty the session's Redis database."""
        broker.close()
        flush_redis_db(self.ns.redis_url)

    def enqueue_noop(self, n: int) -> None:
        """One send per job."""
        for _ in range(n):
            noop.send()

    def enqueue_io(self, n: int) -> None:
        """One send per job."""
        for _ in range(n):
            io.send()

    def enqueue_flaky(self, n: int) -> None:
        """One send per job."""
        for i in range(n):
            flaky.send(i)

    def send_pickup(self, sent_at: float) -> None:
        """One send."""
        pickup.send(sent_at)

    def workers(self, kind: str) -> WorkerPlan:
        """2 processes; THREADS threads each for tiny jobs, 10 for I/O."""
        threads = 10 if kind == "io" else THREADS
        command = [
            sys.executable, "-m", "dramatiq", "bench.peers.dramatiq_peer",
            "--processes", "2", "--threads", str(threads),
        ]  # fmt: skip
        return WorkerPlan([command], 2, 2 * threads, f"--processes 2 --threads {threads}")


def make_adapter(key: str) -> Any:
    """The Dramatiq adapter."""
    return DramatiqAdapter()
