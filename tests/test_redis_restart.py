"""Private redis-server processes: SIGKILL mid-drain with AOF always loses nothing; risky settings warn.

The test starts its own redis-server on a free loopback port with
``--appendonly yes --appendfsync always`` in a temporary directory, lets a
Worker (in a thread) drain 2,000 jobs, kills the server with SIGKILL part-way,
starts it again on the same port and directory, and expects every job to
complete: the worker rides out the outage (retrying with backoff), the
scripts are reloaded after NOSCRIPT, and the structures stay consistent.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor.errors import BackendUnavailable
from redis_invariants import check_redis_invariants
from torture.servers import PrivateRedis

redis = pytest.importorskip("redis")

JOBS = 2000


@pytest.fixture
def durable_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def _poll(fn: Callable[[], Any], until: Callable[[Any], bool], timeout: float, what: str) -> Any:
    """Call fn until its value satisfies ``until``; the server may be down meanwhile."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if until(value):
                return value
        except BackendUnavailable:
            pass
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}; last value {value!r}")


def test_sigkill_of_redis_mid_drain_loses_nothing(durable_server: PrivateRedis) -> None:
    url = f"redis://127.0.0.1:{durable_server.port}/0?prefix=restart"
    app = conveyor.App(url, lease=2.0, reaper_interval=0.5, grace=5.0)
    runs: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    @app.task(max_attempts=50)
    def work(n: int) -> int:
        time.sleep(0.004)
        with lock:
            runs[n] += 1
        return n

    app.enqueue_many([{"task": "work", "args": [i]} for i in range(JOBS)])
    worker = conveyor.Worker(app, concurrency=5)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        completed = lambda: app.stats()["counts"]["completed"]  # noqa: E731
        before = _poll(completed, lambda n: n >= 300, 60, "300 completions before the kill")
        durable_server.kill()
        time.sleep(1.0)  # the worker's claims and writes fail meanwhile, and are retried
        durable_server.start()
        _poll(completed, lambda n: n == JOBS, 120, "every job to complete after the restart")
    finally:
        worker.stop()
        thread.join(30)
    assert before < JOBS, "the kill must land mid-drain"
    counts = app.stats()["counts"]
    assert counts == {**dict.fromkeys(counts, 0), "completed": JOBS}, counts
    missing = [n for n in range(JOBS) if runs[n] == 0]
    assert not missing, f"{len(missing)} jobs completed in the store but never ran"
    assert check_redis_invariants(url, strict_keys=True) == JOBS
    app.close()


def test_warns_when_the_server_may_evict_job_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    evicting = ("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    server = PrivateRedis(tmp_path, extra=evicting)
    server.start()
    try:
        app = conveyor.App(f"redis://127.0.0.1:{server.port}/0?prefix=evict")
        with caplog.at_level(logging.WARNING, logger="conveyor.redis"):
            app.stats()
        messages = [r.getMessage() for r in caplog.records if r.name == "conveyor.redis"]
        assert len(messages) == 1 and "allkeys-lru" in messages[0] and "noeviction" in messages[0]
        app.close()
    finally:
        server.stop()
