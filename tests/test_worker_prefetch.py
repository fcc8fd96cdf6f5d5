"""The prefetch policy: deterministic bounds from fed observations, then real workers using it."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

import conveyor
from conveyor.worker.prefetch import DEFAULT_CAP, Prefetch


def fed(policy: Prefetch, run_time: float, round_trip: float, times: int = 50) -> Prefetch:
    """The policy after ``times`` attempts of ``run_time`` and claims of ``round_trip`` seconds."""
    for _ in range(times):
        policy.observe_run(run_time)
        policy.observe_claim(round_trip, 10)
    return policy


def test_before_any_observation_the_buffer_is_the_concurrency() -> None:
    assert Prefetch(5, 30.0).target() == 5
    assert Prefetch(800, 30.0).target() == DEFAULT_CAP


def test_tiny_jobs_fill_the_buffer_up_to_the_cap() -> None:
    policy = fed(Prefetch(5, 30.0), run_time=20e-6, round_trip=0.002)
    assert policy.target() == DEFAULT_CAP
    assert fed(Prefetch(5, 30.0, cap=64), run_time=20e-6, round_trip=0.002).target() == 64


def test_the_buffer_covers_two_round_trips_at_the_completion_rate() -> None:
    # 10 slots of 5 ms jobs finish 2,000 jobs/s: two 10 ms round trips need 40 of them,
    # two 2 ms round trips 8 (without the horizon, which the next test is about).
    assert fed(Prefetch(10, 30.0, horizon=0.0), run_time=0.005, round_trip=0.010).target() == 40
    assert fed(Prefetch(10, 30.0, horizon=0.0), run_time=0.005, round_trip=0.002).target() == 8
    # 100 ms jobs: two 1 s round trips need 100.
    assert fed(Prefetch(5, 30.0), run_time=0.1, round_trip=1.0).target() == 100


def test_jobs_that_start_within_the_horizon_are_buffered() -> None:
    # Two 2 ms round trips need 8 of the 5 ms jobs, but 100 start within 50 ms anyway.
    assert fed(Prefetch(10, 30.0), run_time=0.005, round_trip=0.002).target() == 100


def test_medium_jobs_buffer_what_starts_within_the_horizon() -> None:
    # 5 slots of 100 ms jobs: 2 start within 50 ms; a 1 ms claim alone would ask for 1.
    assert fed(Prefetch(5, 30.0), run_time=0.1, round_trip=0.001).target() == 2
    # 200 ms jobs: one starts within 50 ms.
    assert fed(Prefetch(5, 30.0), run_time=0.2, round_trip=0.001).target() == 1


def test_slow_jobs_are_not_buffered() -> None:
    # A 1 s job saves a slot 1/500 of its time by being buffered: not worth holding it back.
    assert fed(Prefetch(5, 30.0), run_time=1.0, round_trip=0.002).target() == 0
    assert fed(Prefetch(2, 30.0), run_time=0.2, round_trip=0.001).target() == 0


def test_the_buffer_starts_well_within_the_lease() -> None:
    # A slow claim (1 s) of 50 ms jobs would ask for 200; a 1 s lease allows 25.
    policy = fed(Prefetch(5, 1.0), run_time=0.05, round_trip=1.0)
    assert policy.target() == 25
    for run_time, round_trip, lease in itertools.product(
        (1e-6, 1e-4, 0.001, 0.005, 0.05, 0.5, 5.0), (0.0001, 0.001, 0.01, 0.1, 1.0), (0.5, 5.0, 30.0)
    ):
        target = fed(Prefetch(5, lease), run_time, round_trip).target()
        assert 0 <= target <= DEFAULT_CAP
        assert target * run_time / 5 <= lease / 4 + 1e-9, (run_time, round_trip, lease, target)


def test_the_policy_follows_a_change_of_job_length() -> None:
    policy = fed(Prefetch(5, 30.0), run_time=20e-6, round_trip=0.002)
    assert policy.target() == DEFAULT_CAP
    fed(policy, run_time=2.0, round_trip=0.002, times=30)
    assert policy.target() == 0
    fed(policy, run_time=20e-6, round_trip=0.002, times=30)
    assert policy.target() == DEFAULT_CAP


def test_a_running_attempt_slower_than_the_past_ones_shrinks_the_buffer() -> None:
    policy = fed(Prefetch(5, 30.0), run_time=20e-6, round_trip=0.002)
    assert policy.target() == DEFAULT_CAP
    policy.observe_running(0.5)  # a stall shorter than the evidence threshold changes nothing
    assert policy.target() == DEFAULT_CAP
    policy.observe_running(2.0)  # 5 slots x a quarter of the 30 s lease / 2 s = 18
    assert policy.target() == 18
    assert policy.describe()["running_for"] == 2.0
    policy.observe_running(0.0)  # it ended; the past run times rule again
    assert policy.target() == DEFAULT_CAP


def test_empty_claims_say_nothing_about_batches() -> None:
    policy = Prefetch(5, 30.0)
    policy.observe_claim(5.0, 0)
    assert policy.round_trip is None and not policy.claims


def test_a_fixed_prefetch_ignores_observations() -> None:
    for fixed in (0, 3, 1000):
        policy = fed(Prefetch(5, 30.0, fixed=fixed), run_time=20e-6, round_trip=0.002)
        assert policy.target() == fixed
        assert fed(policy, run_time=5.0, round_trip=0.002).target() == fixed
    assert Prefetch(5, 30.0, fixed=-1).target() == 0


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conveyor.db'}"


def test_a_worker_takes_a_fixed_prefetch_and_reports_its_policy(sqlite_url: str) -> None:
    app = conveyor.App(sqlite_url)
    fixed = conveyor.Worker(app, concurrency=3, prefetch=7, install_signal_handlers=False)
    assert fixed.prefetch == 7 and fixed.stats()["prefetch"]["mode"] == "fixed"
    adaptive = conveyor.Worker(app, concurrency=3, install_signal_handlers=False)
    assert adaptive.prefetch == 3 and adaptive.stats()["prefetch"]["mode"] == "adaptive"
    app.close()


def test_a_stream_of_tiny_jobs_is_claimed_in_large_batches(backend_url: str) -> None:
    app = conveyor.App(backend_url)

    @app.task()
    def tiny() -> None: ...

    app.backend.migrate()
    for _ in range(3):
        app.enqueue_many([{"task": "tiny"}] * 1000)
    worker = conveyor.Worker(app, concurrency=4, install_signal_handlers=False)
    worker.run(burst=True)
    assert worker.counts["completed"] == 3000
    claims = list(worker.prefetch_policy.claims)
    # The first claim is the classic concurrency + concurrency (8); later ones are far larger
    # (how much larger depends on the engine's claim round trip: hundreds on a networked one).
    assert claims[0] <= 8
    assert max(claims) >= 50, claims
    assert worker.prefetch >= 50, worker.stats()["prefetch"]
    app.close()


def test_two_workers_share_a_backlog_of_slow_jobs(backend_url: str) -> None:
    app = conveyor.App(backend_url)

    @app.task()
    def slow(n: int) -> None:
        time.sleep(0.25)

    app.backend.migrate()
    jobs = 16
    app.enqueue_many([{"task": "slow", "args": [n]} for n in range(jobs)])
    first = conveyor.Worker(app, concurrency=2, idle_wait=0.05, install_signal_handlers=False)
    second = conveyor.Worker(app, concurrency=2, idle_wait=0.05, install_signal_handlers=False)
    threads = [threading.Thread(target=w.run, kwargs={"burst": True}) for w in (first, second)]
    threads[0].start()
    # The second starts once the first has finished a job: it knows how long they take.
    deadline = time.monotonic() + 30
    while first.counts["completed"] < 1:
        assert time.monotonic() < deadline, "the first worker finished no job"
        time.sleep(0.01)
    held_when_second_started = first.stats()["busy"]
    threads[1].start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert first.counts["completed"] + second.counts["completed"] == jobs
    # Slow jobs are claimed as slots free: once it knew their length the first worker held
    # its running jobs and at most one more, so the second, starting late, ran a fair share
    # (a worker buffering hundreds would have left it nothing).
    assert held_when_second_started <= first.concurrency + 1
    # (0 at a 1 ms claim round trip; 1 once a loaded machine makes a claim take over 6 ms)
    assert first.prefetch <= 1 and second.prefetch <= 1, (first.stats(), second.stats())
    assert second.counts["completed"] >= jobs // 4, (first.counts, second.counts)
    app.close()


def test_a_worker_that_learned_tiny_jobs_gives_back_slow_ones_it_buffered(sqlite_url: str) -> None:
    app = conveyor.App(sqlite_url)
    release = threading.Event()

    @app.task()
    def tiny() -> None: ...

    @app.task()
    def slow(n: int) -> None:
        release.wait(60)

    app.backend.migrate()
    app.enqueue_many([{"task": "tiny"}] * 1000)
    worker = conveyor.Worker(app, concurrency=2, idle_wait=0.05, install_signal_handlers=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while worker.counts["completed"] < 1000:
            assert time.monotonic() < deadline, worker.counts
            time.sleep(0.01)
        assert worker.prefetch >= 100, worker.stats()["prefetch"]  # it learned: tiny jobs
        slow_jobs = 200
        app.enqueue_many([{"task": "slow", "args": [n]} for n in range(slow_jobs)])
        # It claims a large batch of them at once (it cannot know they are slow), then, once
        # its running ones have run for a second, gives back what would wait longest.
        deadline = time.monotonic() + 30
        while worker.counts["released"] < slow_jobs // 2:
            assert time.monotonic() < deadline, (worker.counts, worker.stats())
            time.sleep(0.02)
        assert worker.stats()["busy"] <= worker.concurrency + slow_jobs // 4, worker.stats()
        pending = app.jobs(status="pending", task="slow").total
        assert pending >= slow_jobs // 2, pending  # back in the queue, for any worker
        assert all(job.attempt == 0 for job in app.jobs(status="pending", task="slow", limit=500))
    finally:
        release.set()
        worker.stop()
        thread.join(60)
    assert not thread.is_alive()
    app.close()
