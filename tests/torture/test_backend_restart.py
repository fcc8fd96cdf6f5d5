"""Scenario 4: the backend restarts mid-run; workers reconnect, nothing acknowledged is lost.

PostgreSQL: a private cluster stopped with ``pg_ctl -m immediate`` (every server
process quits at once; crash recovery on start) and started again. Redis: a
private redis-server with AOF ``appendfsync always`` SIGKILLed and started again
on the same port and directory. Workers are real processes throughout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import conveyor
from conveyor.errors import BackendUnavailable
from torture.checker import check
from torture.harness import Workers, scale
from torture.servers import PrivatePostgres, PrivateRedis

JOBS = int(scale(600, 5000))
RESTARTS = int(scale(1, 3))


def _completed(app: conveyor.App) -> int:
    try:
        return int(app.stats()["counts"]["completed"])
    except BackendUnavailable:
        return -1  # the server is down meanwhile


def _run(url: str, backend: str, restart: object, tmp_path: Path) -> None:
    assert callable(restart)
    print(f"\nbackend restart: {JOBS} jobs, 2 worker processes, {RESTARTS} restart(s) of {backend}")
    app = conveyor.App(url)
    app.declare("step", max_attempts=100)
    started = time.monotonic()
    items = [{"task": "step", "args": [i], "kwargs": {"work_ms": 10}} for i in range(JOBS)]
    accepted = [job.id for job in app.enqueue_many(items)]
    workers = Workers(url, tmp_path / "log")
    workers.start()
    workers.start()
    try:
        for n in range(RESTARTS):
            threshold = JOBS * (n + 1) // (RESTARTS + 2)
            deadline = time.monotonic() + 120
            while _completed(app) < threshold:
                assert time.monotonic() < deadline, "no progress before the restart"
                time.sleep(0.05)
            restart()
        deadline = time.monotonic() + 180
        while _completed(app) != JOBS:
            assert time.monotonic() < deadline, f"drain stalled after the restart: {workers.stderr()}"
            time.sleep(0.1)
    finally:
        codes = workers.stop_all()
    verdict = check(app, "backend restart", backend, accepted, workers.log_dir, started=started)
    verdict.notes["restarts"] = RESTARTS
    # A restart may lose the acknowledgements in flight (the job then runs again): at most
    # what two workers hold, per restart.
    verdict.assert_valid(max_duplicated=RESTARTS * 2 * 10)
    assert codes == [0, 0], workers.stderr()
    app.close()


def test_postgres_restart_mid_run(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    server = PrivatePostgres()
    server.init()
    try:
        _run(server.url(), "postgres", server.restart, tmp_path)
    finally:
        server.stop()


def test_redis_kill9_and_restart_mid_run(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    (tmp_path / "redis").mkdir()
    server = PrivateRedis(tmp_path / "redis")
    server.start()

    def restart() -> None:
        server.kill()
        time.sleep(0.5)  # workers' calls fail meanwhile and are retried
        server.start()

    try:
        _run(server.url("torture"), "redis", restart, tmp_path)
    finally:
        server.stop()
