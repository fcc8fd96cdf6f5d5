"""The adapter interface every system implements, and the namespace a session runs in.

An adapter module (``bench/peers/<system>_peer.py``) defines the system's app and
tasks at import time from ``BENCH_*`` environment variables (so its worker
processes, which import the same module, see the same configuration) and an
``ADAPTER`` object: how to enqueue each workload's jobs with the system's own
client, and which worker commands to start with which budget.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: The workloads a worker plan can be asked for: no-op jobs (enqueue and drain), latency probes,
#: 5 ms I/O jobs, flaky jobs. Most systems use their no-op plan for latency and retry too.
WORKER_KINDS = ("noop", "latency", "io", "retry")


@dataclass
class Namespace:
    """Where one session keeps its data; everything in it is created fresh and removed after."""

    tag: str
    out: Path
    redis_url: str
    pg_dsn: str

    @classmethod
    def from_env(cls) -> Namespace:
        """The namespace a driver set in this process's environment (worker processes inherit it)."""
        return cls(
            tag=os.environ["BENCH_TAG"],
            out=Path(os.environ["BENCH_OUT"]),
            redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
            pg_dsn=os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        )

    def env(self) -> dict[str, str]:
        """The environment variables that carry this namespace to worker processes."""
        return {
            "BENCH_TAG": self.tag,
            "BENCH_OUT": str(self.out),
            "BENCH_REDIS_URL": self.redis_url,
            "BENCH_PG_DSN": self.pg_dsn,
        }

    @property
    def sqlite_dir(self) -> Path:
        """A directory for this session's SQLite files."""
        return self.out.parent


def make_tag(*parts: str) -> str:
    """A name safe as a PostgreSQL identifier and a Redis key prefix."""
    return re.sub(r"[^a-z0-9_]", "_", "_".join(parts).lower())


@dataclass
class WorkerPlan:
    """The worker processes to start for one workload, and what that budget is."""

    commands: list[list[str]]
    #: Processes that execute jobs (a supervisor or a prefork parent does not count).
    processes: int
    #: Jobs that can run at once, across all processes.
    concurrency: int
    #: One line a reader can check: flags, pool kind, prefetch, polling.
    description: str
    env: dict[str, str] = field(default_factory=dict)


class Adapter:
    """One system under test. Subclasses implement every method."""

    #: Key used on the command line and in results, e.g. ``celery`` or ``conveyor-redis``.
    key: str = ""
    #: The row label, e.g. ``Celery (Redis)``.
    label: str = ""
    #: The storage engine: ``sqlite``, ``postgres`` or ``redis``.
    engine: str = ""
    #: Distributions whose versions are recorded.
    packages: tuple[str, ...] = ()
    #: How the enqueue workload enqueues (bulk API, pipelined, one call per job).
    enqueue_method: str = ""
    #: How retries are configured for the retry workload.
    retry_method: str = ""

    def __init__(self) -> None:
        self.ns = Namespace.from_env()

    @property
    def is_conveyor(self) -> bool:
        """True for Conveyor's own adapters."""
        return self.key.startswith("conveyor")

    def versions(self) -> dict[str, str]:
        """Installed versions of the system's packages."""
        return package_versions(self.packages)

    def python(self) -> str:
        """The interpreter that runs this adapter and its workers."""
        return sys.executable

    # -- lifecycle ------------------------------------------------------------
    def setup(self) -> None:
        """Create the namespace's storage (database, schema) and open clients."""

    def teardown(self) -> None:
        """Close clients and remove everything the session stored."""

    # -- producers -------------------------------------------------------------
    def enqueue_noop(self, n: int) -> None:
        """Enqueue ``n`` no-op jobs as fast as the system's client allows (bulk where it has one)."""
        raise NotImplementedError

    def enqueue_io(self, n: int) -> None:
        """Enqueue ``n`` jobs of 5 ms simulated I/O."""
        raise NotImplementedError

    def enqueue_flaky(self, n: int) -> None:
        """Enqueue flaky jobs numbered ``0..n-1`` (20% fail once), retried with zero backoff."""
        raise NotImplementedError

    def send_pickup(self, sent_at: float) -> None:
        """Enqueue one latency probe carrying ``sent_at`` (one call, as a web request would)."""
        raise NotImplementedError

    # -- consumers ---------------------------------------------------------------
    def workers(self, kind: str) -> WorkerPlan:
        """The worker processes for ``kind`` (one of :data:`WORKER_KINDS`)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Everything a reader needs to re-run this system's configuration."""
        return {
            "label": self.label,
            "engine": self.engine,
            "versions": self.versions(),
            "enqueue": self.enqueue_method,
            "retry": self.retry_method,
            "workers": {kind: self.workers(kind).description for kind in WORKER_KINDS},
        }


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of distributions, by name."""
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def chunks(n: int, size: int = 1000) -> list[int]:
    """Split ``n`` into chunk sizes of at most ``size``."""
    return [min(size, n - start) for start in range(0, n, size)]


def flush_redis_db(url: str) -> None:
    """Empty the session's Redis database (the orchestrator gives peers a database of their own)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


class AsyncAdapter(Adapter):
    """An adapter whose client is asyncio: one event loop for the session."""

    def __init__(self) -> None:
        super().__init__()
        import asyncio

        self.loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the session's loop."""
        return self.loop.run_until_complete(coro)

    async def gather_chunks(self, make: Any, n: int, width: int = 100) -> None:
        """Await ``make(i)`` for ``i`` in ``range(n)``, ``width`` in flight at a time (pipelined enqueue)."""
        import asyncio

        for start in range(0, n, width):
            await asyncio.gather(*(make(i) for i in range(start, min(n, start + width))))
