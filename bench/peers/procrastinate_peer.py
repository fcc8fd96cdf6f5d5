"""Procrastinate on PostgreSQL: async tasks, ``procrastinate worker --concurrency 10`` x 2 processes.

Each session gets a database of its own (created, schema applied, dropped).
Workers wake on LISTEN/NOTIFY (Procrastinate's default).
"""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import procrastinate
import psycopg
from psycopg import sql

from . import common
from .base import AsyncAdapter, Namespace, WorkerPlan, chunks

NS = Namespace.from_env() if "BENCH_OUT" in os.environ else None


def session_dsn(ns: Namespace | None) -> str:
    """The DSN of the session's own database (named after its tag)."""
    if ns is None:
        return "postgresql://postgres@127.0.0.1:5432/test"
    parts = urlsplit(ns.pg_dsn)
    return urlunsplit(parts._replace(path=f"/{ns.tag}"))


app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=session_dsn(NS)))


@app.task(name="noop")
async def noop() -> None:
    """The no-op job."""
    common.noop()


@app.task(name="pickup")
async def pickup(sent_at: float) -> None:
    """The latency probe."""
    common.pickup(sent_at)


@app.task(name="io")
async def io() -> None:
    """5 ms of simulated I/O."""
    await common.io_async()


@app.task(name="flaky", retry=procrastinate.RetryStrategy(max_attempts=1, wait=0))
async def flaky(n: int) -> None:
    """Every fifth job fails its first attempt; retried at once."""
    common.flaky(n)


class ProcrastinateAdapter(AsyncAdapter):
    """Procrastinate 3 on PostgreSQL."""

    key = "procrastinate"
    label = "Procrastinate (PostgreSQL)"
    engine = "postgres"
    packages = ("procrastinate", "psycopg", "psycopg-pool")
    enqueue_method = "task.batch_defer_async, 1,000 jobs per call"
    retry_method = "retry=RetryStrategy(max_attempts=1, wait=0)"

    def setup(self) -> None:
        """Create the session's database and apply Procrastinate's schema."""
        with psycopg.connect(self.ns.pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.ns.tag)))
        self.run(app.open_async())
        self.run(app.schema_manager.apply_schema_async())

    def teardown(self) -> None:
        """Close the app and drop the session's database."""
        self.run(app.close_async())
        with psycopg.connect(self.ns.pg_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.ns.tag))
            )

    async def _batches(self, task: Any, n: int, kwargs: Any = None) -> None:
        done = 0
        for size in chunks(n):
            await task.batch_defer_async(*[kwargs(i) if kwargs else {} for i in range(done, done + size)])
            done += size

    def enqueue_noop(self, n: int) -> None:
        """Bulk."""
        self.run(self._batches(noop, n))

    def enqueue_io(self, n: int) -> None:
        """Bulk."""
        self.run(self._batches(io, n))

    def enqueue_flaky(self, n: int) -> None:
        """Bulk."""
        self.run(self._batches(flaky, n, lambda i: {"n": i}))

    def send_pickup(self, sent_at: float) -> None:
        """One defer."""
        self.run(pickup.defer_async(sent_at=sent_at))

    def workers(self, kind: str) -> WorkerPlan:
        """Two worker processes of 10 concurrent jobs each."""
        command = [
            sys.executable, "-m", "procrastinate", "--app", "bench.peers.procrastinate_peer.app",
            "--log-level", "warning", "worker", "--concurrency", "10",
        ]  # fmt: skip
        return WorkerPlan([command, command], 2, 20, "2 processes x worker --concurrency 10 (LISTEN/NOTIFY)")


def make_adapter(key: str) -> Any:
    """The Procrastinate adapter."""
    return ProcrastinateAdapter()
