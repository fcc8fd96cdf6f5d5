"""Scenario 5, SQLite: 8 processes contend for one database file; one is SIGKILLed mid-write.

Four worker processes and four producer processes (each enqueueing one job per
transaction) share the file; a worker is SIGKILLed while writing. The database
passes ``PRAGMA integrity_check``, no producer ever sees ``database is locked``
(or any error), and every accepted job completes.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import conveyor
from backends import require_or_skip
from torture.checker import check
from torture.harness import SRC, TESTS, Workers, scale, wait_until

PER_PRODUCER = int(scale(150, 2500))
KILLS = int(scale(2, 10))


def test_eight_processes_one_killed_mid_write(tmp_path: Path) -> None:
    require_or_skip("sqlite")
    url = f"sqlite:///{tmp_path / 'contended.db'}"
    print(f"\nsqlite contention: 4 workers + 4 producers x {PER_PRODUCER} jobs, {KILLS} worker kills")
    app = conveyor.App(url)
    app.declare("step", max_attempts=100)
    app.stats()  # creates the schema before the crowd arrives
    started = time.monotonic()
    workers = Workers(url, tmp_path / "log")
    for _ in range(4):
        workers.start()
    out = tmp_path / "accepted.txt"
    env = {**workers.env(), "PYTHONPATH": f"{TESTS}:{SRC}"}
    producers = [
        subprocess.Popen(
            [sys.executable, "-m", "torture.producer", url, str(out), str(PER_PRODUCER)],
            env=env,
            cwd=str(TESTS),
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    try:
        for _ in range(KILLS):
            # Kill while the others write: some worker is mid-claim or mid-acknowledgement.
            wait_until(lambda: app.stats()["counts"]["completed"] > 0, 60, "progress")
            time.sleep(0.4)
            workers.kill(workers.alive()[0])
            workers.start()
        errors = [p.communicate(timeout=180)[1].decode() for p in producers]
        assert [p.returncode for p in producers] == [0] * 4, errors
        assert not any("locked" in e for e in errors), errors
        accepted = out.read_text().split()
        assert len(accepted) == 4 * PER_PRODUCER
        wait_until(lambda: app.stats()["counts"]["completed"] == len(accepted), 180, "the drain")
    finally:
        workers.stop_all()
    with sqlite3.connect(tmp_path / "contended.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    verdict = check(
        app,
        "sqlite: 8 processes, kill -9 mid-write",
        "sqlite",
        accepted,
        workers.log_dir,
        started=started,
        kills=workers.kills,
    )
    verdict.notes["integrity_check"] = "ok"
    verdict.assert_valid(max_duplicated=workers.kills * 10)
    app.close()
