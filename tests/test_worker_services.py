"""The worker's periodic services and its completer, waited on through their hooks, never sleeps."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

import conveyor
from conveyor.backends.base import Backend, ClaimedJob, ClaimRequest, Outcome
from conveyor.context import JobContext
from conveyor.errors import ConfigurationError
from conveyor.worker.attempt import Attempt
from conveyor.worker.completer import Completer, Written
from conveyor.worker.services import Heartbeat, PeriodicService, Reaper


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[conveyor.App]:
    """An App on a fresh SQLite file: these tests are about the services, not the engines."""
    application = conveyor.App(f"sqlite:///{tmp_path / 'conveyor.db'}", lease=0.3, reaper_interval=0.05)

    @application.task()
    def work() -> None: ...

    yield application
    application.close()


def claim(app: conveyor.App, count: int, *, lease: float = 30.0, worker: str = "w1") -> list[ClaimedJob]:
    jobs = app.backend.claim(ClaimRequest(("default",), count, lease, worker))
    assert len(jobs) == count
    return jobs


def attempt_of(job: ClaimedJob) -> Attempt:
    return Attempt(job, None, JobContext(job.id, job.task, job.queue, job.attempt, job.max_attempts))


class Counting(PeriodicService):
    """Counts its calls; the first ``failures`` of them raise, as a restarting backend would."""

    name = "counting"

    def __init__(self, interval: float, *, failures: int = 0) -> None:
        super().__init__(interval)
        self.calls = 0
        self.failures = failures

    def run_once(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("backend restarting\nsecond line")


# -- the base ---------------------------------------------------------------------------
def test_a_service_runs_every_interval_until_stopped() -> None:
    service = Counting(0.01)
    service.start()
    try:
        assert service.wait_for_runs(3, timeout=5), service
    finally:
        service.stop()
    assert not service.running
    assert service.runs == service.calls >= 3
    ran = service.runs
    assert service.wait_for_runs(ran + 1, timeout=0.1) is False, "a stopped service runs no more"
    assert service.runs == ran


def test_a_failing_run_logs_one_line_is_retried_and_is_not_counted(caplog: pytest.LogCaptureFixture) -> None:
    service = Counting(0.01, failures=2)
    with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
        service.start()
        try:
            assert service.wait_for_runs(1, timeout=5), service
        finally:
            service.stop()
    assert service.runs == service.calls - 2
    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("counting failed")]
    assert failures[:2] == [
        "counting failed (ConnectionError: backend restarting); retrying in 0.1s",
        "counting failed (ConnectionError: backend restarting); retrying in 0.2s",
    ]


def test_wait_for_runs_says_false_when_the_service_has_not_run() -> None:
    service = Counting(60)
    assert service.wait_for_runs(1, timeout=0.05) is False
    service.start()
    service.stop()
    assert service.runs == 0, "the first run is one interval after start"


def test_a_service_refuses_settings_that_cannot_work() -> None:
    with pytest.raises(ConfigurationError, match=r"counting interval must be > 0 seconds, got 0"):
        Counting(0)
    with pytest.raises(ConfigurationError, match=r"reaper batch_size must be >= 1, got 0"):
        Reaper(cast(Backend, None), 1.0, batch_size=0)


# -- the reaper -------------------------------------------------------------------------
def test_the_reaper_requeues_lapsed_leases_once_it_has_run(sqlite_app: conveyor.App) -> None:
    job = sqlite_app.tasks["work"].enqueue()
    claim(sqlite_app, 1, lease=0.0, worker="gone")
    reaper = Reaper(sqlite_app.backend, 0.02)
    reaper.start()
    try:
        assert reaper.wait_for_runs(1, timeout=5), reaper
    finally:
        reaper.stop()
    assert sqlite_app.get(job.id).state == "pending"


def test_one_reaper_run_takes_at_most_max_batches_of_batch_size(sqlite_app: conveyor.App) -> None:
    sqlite_app.enqueue_many([{"task": "work"}] * 25)
    claim(sqlite_app, 25, lease=0.0, worker="gone")
    reaper = Reaper(sqlite_app.backend, 60, batch_size=10, max_batches=2)
    reaper.run_once()
    assert sqlite_app.stats()["counts"]["pending"] == 20
    reaper.run_once()
    assert sqlite_app.stats()["counts"]["pending"] == 25


# -- the heartbeat ----------------------------------------------------------------------
def test_the_heartbeat_passes_on_cancel_requests_and_lost_leases(sqlite_app: conveyor.App) -> None:
    work = sqlite_app.tasks["work"]
    to_cancel, to_lose, decided = work.enqueue(), work.enqueue(), work.enqueue()
    [cancel_claim] = claim(sqlite_app, 1)
    [stale_claim] = claim(sqlite_app, 1, lease=0.0)
    [decided_claim] = claim(sqlite_app, 1)
    assert (cancel_claim.id, stale_claim.id, decided_claim.id) == (to_cancel.id, to_lose.id, decided.id)
    sqlite_app.backend.reap_expired()
    claim(sqlite_app, 1, worker="w2")  # someone else holds the lapsed job now
    sqlite_app.cancel(to_cancel.id)
    sqlite_app.cancel(decided.id)
    held = [attempt_of(job) for job in (cancel_claim, stale_claim, decided_claim)]
    assert held[2].decide(), "an attempt already decided is left alone"
    lost: set[str] = set()
    cancelled: list[str] = []

    def on_cancel_requested(attempt: Attempt) -> None:
        attempt.context.request_cancel()  # as the Worker does: asked once
        cancelled.append(attempt.job.id)

    heartbeat = Heartbeat(
        sqlite_app.backend,
        0.02,
        30.0,
        held=lambda: held,
        on_lost=lambda attempt: lost.add(attempt.job.id),
        on_cancel_requested=on_cancel_requested,
    )
    heartbeat.start()
    try:
        assert heartbeat.wait_for_runs(2, timeout=5), heartbeat
    finally:
        heartbeat.stop()
    assert lost == {to_lose.id}
    assert cancelled == [to_cancel.id]
    assert sqlite_app.backend.reap_expired(10).requeued == 0, "the held leases were renewed"


# -- the completer ----------------------------------------------------------------------
class FlakyBackend:
    """A backend whose first ``failures`` outcome writes fail, as during a restart."""

    def __init__(self, backend: Backend, failures: int) -> None:
        self.backend = backend
        self.failures = failures
        self.writes: list[int] = []

    def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection refused")
        self.writes.append(len(outcomes))
        return self.backend.finish_many(outcomes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


def test_the_completer_retries_failed_writes_drops_nothing_and_reports_what_applied(
    sqlite_app: conveyor.App,
) -> None:
    jobs = [sqlite_app.tasks["work"].enqueue() for _ in range(6)]
    claims = claim(sqlite_app, 5)
    [stale] = claim(sqlite_app, 1, lease=0.0)
    sqlite_app.backend.reap_expired()
    claim(sqlite_app, 1, worker="w2")  # the stale claim's outcome must be fenced off
    backend = FlakyBackend(sqlite_app.backend, failures=2)
    reported: dict[str, bool] = {}
    lock = threading.Lock()

    def on_written(batch: Written, applied: list[bool]) -> None:
        with lock:
            reported.update({attempt.job.id: ok for (attempt, _), ok in zip(batch, applied, strict=True)})

    completer = Completer(cast(Backend, backend), on_written, max_retry_delay=0.05)
    completer.start()
    for job in [*claims, stale]:
        attempt = attempt_of(job)
        completer.submit(attempt, attempt.outcome("completed", "w1", result='"ok"'))
    assert completer.stop(timeout=10), "every submitted outcome is written before stop returns"
    assert completer.pending == 0
    assert backend.failures == 0 and sum(backend.writes) == 6
    assert reported == {**{job.id: True for job in claims}, stale.id: False}
    states = {job.id: sqlite_app.get(job.id).state for job in jobs}
    assert states == {**{job.id: "completed" for job in jobs[:5]}, jobs[5].id: "processing"}


# -- the worker's list ------------------------------------------------------------------
def test_a_running_worker_runs_each_of_its_services(sqlite_app: conveyor.App) -> None:
    # The maintenance services' defaults (1 s, 10 s, 5 s) made short, so each runs twice quickly.
    sqlite_app.settings = dataclasses.replace(
        sqlite_app.settings, scheduler_interval=0.1, pruner_interval=0.1, alerter_interval=0.1
    )
    worker = conveyor.Worker(sqlite_app, install_signal_handlers=False, idle_wait=0.05)
    assert worker.services == (
        worker.heartbeat,
        worker.reaper,
        worker.scheduler,
        worker.pruner,
        worker.alerter,
    )
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    try:
        for service in worker.services:
            assert service.wait_for_runs(2, timeout=5), service
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert not any(service.running for service in worker.services)
