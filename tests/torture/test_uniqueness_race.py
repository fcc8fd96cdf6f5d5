"""Scenario 10: 20 producers enqueue the same idempotency key at the same instant: one job.

Processes on the backends other processes can open (each its own connection,
released together at a shared start time); 20 threads with their own App on
memory://.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import conveyor
from torture.checker import check
from torture.harness import SRC, TESTS, scale

PRODUCERS = 20
ROUNDS = int(scale(1, 10))


def test_same_key_from_twenty_producers_makes_one_job(
    backend_name: str, backend_url: str, tmp_path: Path
) -> None:
    app = conveyor.App(backend_url)
    app.declare("step", max_attempts=1)
    app.stats()
    started = time.monotonic()
    accepted: set[str] = set()
    for round_ in range(ROUNDS):
        key = f"race-{round_}"
        out = tmp_path / f"ids-{round_}.txt"
        if backend_name == "memory":
            barrier = threading.Barrier(PRODUCERS)
            ids: list[str] = []

            def produce(key: str = key, barrier: threading.Barrier = barrier, ids: list[str] = ids) -> None:
                own = conveyor.App(backend_url)
                own.declare("step", max_attempts=1)
                barrier.wait()
                ids.append(own.enqueue("step", args=[0], key=key).id)

            threads = [threading.Thread(target=produce) for _ in range(PRODUCERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        else:
            at = time.time() + 3.0  # every process imported and connected by then
            env = {"PYTHONPATH": f"{TESTS}:{SRC}", "PATH": "/usr/bin:/bin"}
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "torture.producer",
                        backend_url,
                        str(out),
                        "1",
                        "--key",
                        key,
                        "--at",
                        str(at),
                    ],
                    env=env,
                    cwd=str(TESTS),
                    stderr=subprocess.PIPE,
                )
                for _ in range(PRODUCERS)
            ]
            errors = [p.communicate(timeout=60)[1].decode() for p in procs]
            assert [p.returncode for p in procs] == [0] * PRODUCERS, errors
            ids = out.read_text().split()
        assert len(ids) == PRODUCERS, "every producer got an answer"
        assert len(set(ids)) == 1, f"{len(set(ids))} jobs for one key: {sorted(set(ids))}"
        accepted |= set(ids)
    assert app.stats()["counts"]["pending"] == ROUNDS
    for job_id in accepted:
        app.cancel(job_id)  # settle them: the checker wants final states
    verdict = check(
        app,
        "uniqueness race (20 producers, one key)",
        backend_name,
        accepted,
        None,
        expected_state=dict.fromkeys(accepted, "cancelled"),
        started=started,
    )
    verdict.notes["jobs_per_key"] = 1
    verdict.assert_valid()
    app.close()
