"""Conveyor on SQLite, PostgreSQL or Redis (``BENCH_ENGINE``), run from the main venv.

Workers: ``conveyor worker bench.peers.conveyor_peer:app --processes 2``. The
headline systems (``conveyor-<engine>``) run what users run: the defaults
(concurrency 5, adaptive prefetch), except the I/O workload, whose 20-slot budget
needs ``--concurrency 10``. The tuned systems (``conveyor-<engine>-tuned``) pass
the concurrency and prefetch that docs/operations.md recommends for each kind of
job (a small thread pool and a deep fixed prefetch for tiny jobs), so the report
shows how far the defaults are from hand tuning.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import conveyor

from ..stores import drop_store, namespace_url
from . import common
from .base import Adapter, Namespace, WorkerPlan, chunks, package_versions

NS = Namespace.from_env() if "BENCH_OUT" in os.environ else None
ENGINE = os.environ.get("BENCH_ENGINE", "sqlite")

#: Per-process worker options of the headline systems: the defaults (None: not passed).
DEFAULTS: dict[str, dict[str, int | None]] = {
    "noop": {"concurrency": None, "prefetch": None},
    "latency": {"concurrency": None, "prefetch": None},
    "io": {"concurrency": 10, "prefetch": None},  # 2 x 10 = the workload's 20 slots
    "retry": {"concurrency": None, "prefetch": None},
}
#: Per-process concurrency and prefetch of the tuned systems (2 processes each).
CONFIG: dict[str, dict[str, int | None]] = {
    "noop": {"concurrency": 4, "prefetch": 500},
    "latency": {"concurrency": 4, "prefetch": 500},
    "io": {"concurrency": 10, "prefetch": 10},
    "retry": {"concurrency": 4, "prefetch": 500},
}
for _kind in CONFIG:  # BENCH_CONVEYOR_NOOP_CONFIG=4,200 overrides the tuned concurrency,prefetch
    if override := os.environ.get(f"BENCH_CONVEYOR_{_kind.upper()}_CONFIG"):
        _c, _p = override.split(",")
        CONFIG[_kind] = {"concurrency": int(_c), "prefetch": int(_p)}
#: Worker processes (2, the comparison's budget; ``make bench`` also measures 1).
PROCESSES = int(os.environ.get("BENCH_CONVEYOR_PROCESSES", "2"))
#: Run the I/O task as a coroutine instead of in threads. Off: each async job parks a slot thread
#: while it runs on the event loop, and that double hand-off made 5 ms async jobs slower than sync ones.
IO_ASYNC = os.environ.get("BENCH_CONVEYOR_IO", "sync") == "async"


def backend_url(ns: Namespace | None, engine: str) -> str | None:
    """The Conveyor URL of this session's namespace."""
    if ns is None:
        return None
    return namespace_url(engine, ns.tag, ns.redis_url, ns.pg_dsn, ns.sqlite_dir)


app = conveyor.App(backend_url(NS, ENGINE))


@app.task()
def noop() -> None:
    """The no-op job."""
    common.noop()


@app.task()
def pickup(sent_at: float) -> None:
    """The latency probe."""
    common.pickup(sent_at)


if IO_ASYNC:

    @app.task(name="io")
    async def io_async() -> None:
        """5 ms of simulated I/O, on the worker's event loop."""
        await common.io_async()

else:

    @app.task(name="io")
    def io_sync() -> None:
        """5 ms of simulated I/O, in a worker thread."""
        common.io_sync()


@app.task(max_attempts=2, backoff=conveyor.backoff.fixed(0))
def flaky(n: int) -> None:
    """Every fifth job fails its first attempt; retried at once."""
    common.flaky(n)


class ConveyorAdapter(Adapter):
    """Conveyor through its public API and CLI."""

    packages = ("conveyor",)
    enqueue_method = "app.enqueue_many, 1,000 jobs per call"
    retry_method = "@app.task(max_attempts=2, backoff=conveyor.backoff.fixed(0))"

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.engine = ENGINE
        #: ``conveyor-<engine>-tuned``: the hand-tuned options instead of the defaults.
        self.tuned = key.endswith("-tuned")
        self.label = {"sqlite": "Conveyor (SQLite)", "postgres": "Conveyor (PostgreSQL)"}.get(
            ENGINE, "Conveyor (Redis)"
        )
        if self.tuned:
            self.label = self.label[:-1] + ", tuned)"

    def versions(self) -> dict[str, str]:
        """Conveyor's version and the driver of its engine."""
        driver = {"postgres": ("psycopg",), "redis": ("redis", "hiredis")}.get(self.engine, ())
        return package_versions(("conveyor", *driver))

    def setup(self) -> None:
        """Create the schema (the namespace is new)."""
        app.backend.migrate()

    def teardown(self) -> None:
        """Drop the session's store: its PostgreSQL schema, Redis keys or SQLite files (bench.stores)."""
        app.close()
        url = backend_url(self.ns, self.engine)
        if url is not None:
            drop_store(url)

    def enqueue_noop(self, n: int) -> None:
        """Bulk: ``enqueue_many`` of 1,000 at a time."""
        for size in chunks(n):
            app.enqueue_many([{"task": "noop"}] * size)

    def enqueue_io(self, n: int) -> None:
        """Bulk."""
        for size in chunks(n):
            app.enqueue_many([{"task": "io"}] * size)

    def enqueue_flaky(self, n: int) -> None:
        """Bulk, numbered."""
        for start in range(0, n, 1000):
            app.enqueue_many([{"task": "flaky", "args": [i]} for i in range(start, min(n, start + 1000))])

    def send_pickup(self, sent_at: float) -> None:
        """One ``enqueue`` call."""
        pickup.enqueue(sent_at)

    def workers(self, kind: str) -> WorkerPlan:
        """``conveyor worker --processes 2``, with the kind's options (defaults, or tuned)."""
        config = (CONFIG if self.tuned else DEFAULTS)[kind]
        options: list[str] = []
        for option in ("concurrency", "prefetch"):
            if (value := config[option]) is not None:
                options += [f"--{option}", str(value)]
        command = [
            sys.executable, "-m", "conveyor", "worker", "bench.peers.conveyor_peer:app",
            "--processes", str(PROCESSES), *options, "--log-level", "warning",
        ]  # fmt: skip
        concurrency = config["concurrency"] or app.settings.concurrency
        style = "async task, one event loop" if kind == "io" and IO_ASYNC else "threads"
        shown = " ".join(options) or "(defaults: concurrency 5, adaptive prefetch)"
        return WorkerPlan(
            commands=[command],
            processes=PROCESSES,
            concurrency=PROCESSES * concurrency,
            description=f"--processes {PROCESSES} {shown} ({style})",
        )


def make_adapter(key: str) -> Any:
    """The adapter for ``conveyor-<engine>`` (defaults) or ``conveyor-<engine>-tuned``."""
    return ConveyorAdapter(key)
