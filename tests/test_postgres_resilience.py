"""PostgreSQL connection loss: the server kills the backend's connections during a drain, and
every job still completes (operations fail fast, the pool reconnects, the worker retries, the
reaper recovers leases that lapsed meanwhile)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import conveyor
from backends import POSTGRES_URL, fresh_url, require_or_skip
from conveyor.ids import new_job_id
from helpers import running_worker

psycopg = pytest.importorskip("psycopg")

JOBS = 2000
KILL = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s"


def kill_connections(application_name: str) -> int:
    """Terminate every server process serving connections with this application_name."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute(KILL, [application_name]).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_killed_connections_during_a_drain_lose_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_or_skip("postgres")
    caplog.set_level(logging.WARNING)
    with fresh_url("postgres", tmp_path) as base:
        name = "conveyor_drop_" + new_job_id()[-10:]
        app = conveyor.App(f"{base}&application_name={name}", lease=2.0, reaper_interval=0.2, grace=5.0)
        monitor = conveyor.App(base)  # the test's own view, on connections it never kills
        runs: collections.Counter[int] = collections.Counter()
        lock = threading.Lock()

        @app.task(max_attempts=50)
        def work(n: int) -> None:
            time.sleep(0.005)
            with lock:
                runs[n] += 1

        app.enqueue_many([{"task": "work", "args": [n]} for n in range(JOBS)])
        kills: list[int] = []
        try:
            with running_worker(app, idle_wait=0.2, concurrency=8):
                deadline = time.monotonic() + 180
                next_kill = 0.0
                while True:
                    done = monitor.stats()["counts"]["completed"]
                    if done >= JOBS:
                        break
                    assert time.monotonic() < deadline, f"drain stalled: {monitor.stats()['counts']}"
                    if done and time.monotonic() >= next_kill:
                        kills.append(kill_connections(name))  # pool, listener: everything it has
                        next_kill = time.monotonic() + 0.3
                    time.sleep(0.05)
            counts = monitor.stats()["counts"]
        finally:
            app.close()
            monitor.close()
    assert counts == {**dict.fromkeys(counts, 0), "completed": JOBS}, counts
    assert set(runs) == set(range(JOBS)), "every job ran"
    assert len(kills) >= 3 and min(kills) >= 1, f"the test must really kill connections: {kills}"
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    print(f"kills {kills}, re-runs {sum(runs.values()) - JOBS}, {len(retries)} retried backend calls")


def test_a_refused_first_connection_fails_fast_with_the_server_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_or_skip("postgres")
    caplog.set_level(logging.DEBUG)
    url = urlsplit(POSTGRES_URL)._replace(path="/conveyor_no_such_database").geturl()
    app = conveyor.App(url)
    started = time.monotonic()
    with pytest.raises(
        conveyor.errors.BackendUnavailable, match='"conveyor_no_such_database" does not exist'
    ):
        app.stats()
    assert time.monotonic() - started < 2  # not pool_timeout (5 s) of background retries
    assert [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")] == []
    app.close()
