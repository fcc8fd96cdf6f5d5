"""Scenario 6, the claim race: 50 concurrent claimers over 1,000 jobs; every (job, attempt) once.

Ten Apps (each its own connections) with five claiming threads each call the
Backend's ``claim`` directly, in small random batches, until nothing is due.
Round one lets every lease lapse, and the 50 threads then race the reaper too;
round two claims every job again (attempt 2) and completes it. Each (job id,
attempt) must be claimed exactly once, and every job must end completed.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from pathlib import Path

import conveyor
from conveyor.backends.base import ClaimedJob, ClaimRequest, Outcome
from torture.checker import check
from torture.harness import scale

JOBS = int(scale(1000, 10_000))
APPS, THREADS = 10, 5
LEASE = 1.0


def _race(apps: list[conveyor.App], action: object) -> list[ClaimedJob]:
    """Run ``action(app, rng)`` on APPS x THREADS threads released together; all they claimed."""
    assert callable(action)
    claimed: list[ClaimedJob] = []
    lock = threading.Lock()
    barrier = threading.Barrier(APPS * THREADS)
    errors: list[BaseException] = []

    def main(app: conveyor.App, seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        try:
            got = action(app, rng)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            return
        with lock:
            claimed.extend(got)

    threads = [threading.Thread(target=main, args=(apps[i % APPS], i)) for i in range(APPS * THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    return claimed


def _claim_all(app: conveyor.App, rng: random.Random) -> list[ClaimedJob]:
    got: list[ClaimedJob] = []
    while batch := app.backend.claim(ClaimRequest(("default",), rng.randint(1, 10), LEASE, "racer")):
        got.extend(batch)
    return got


def _reap(app: conveyor.App, rng: random.Random) -> list[ClaimedJob]:
    app.backend.reap_expired(limit=rng.randint(10, 200))
    return []


def test_fifty_claimers_claim_each_job_attempt_once(
    backend_name: str, backend_url: str, tmp_path: Path
) -> None:
    apps = [conveyor.App(backend_url) for _ in range(APPS)]
    app = apps[0]
    app.declare("step", max_attempts=5)
    started = time.monotonic()
    accepted = [j.id for j in app.enqueue_many([{"task": "step", "args": [i]} for i in range(JOBS)])]
    first = _race(apps, _claim_all)
    time.sleep(LEASE + 0.2)  # every lease lapses
    while app.stats()["counts"]["processing"]:
        _race(apps, _reap)
    second = _race(apps, _claim_all)
    claims = collections.Counter((job.id, job.attempt) for job in first + second)
    twice = [pair for pair, count in claims.items() if count > 1]
    assert not twice, f"{len(twice)} (job, attempt) pairs claimed more than once: {twice[:5]}"
    assert {job.id for job in first} == {job.id for job in second} == set(accepted)
    assert {job.attempt for job in first} == {1} and {job.attempt for job in second} == {2}
    outcomes = [
        Outcome(job.id, job.lease_token, "completed", job.attempt, "racer", result="null") for job in second
    ]
    assert all(app.backend.finish_many(outcomes))
    verdict = check(app, "claim race (50 claimers)", backend_name, accepted, None, started=started)
    verdict.notes["claims"] = len(first) + len(second)
    verdict.notes["double_claims"] = 0
    verdict.assert_valid()
    for each in apps:
        each.close()
