"""Property tests: the backoff policies, and the state machine on every backend."""

from __future__ import annotations

import secrets
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import conveyor
from conveyor import backoff
from conveyor.backends.base import ClaimedJob, ClaimRequest, Outcome
from conveyor.retry import RetryPolicy
from conveyor.states import ALL_STATES, TRANSITIONS

retry_numbers = st.integers(min_value=1, max_value=10_000)
seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(base=seconds, cap=seconds, n=retry_numbers)
def test_exponential_full_jitter_stays_within_zero_and_the_capped_ceiling(
    base: float, cap: float, n: int
) -> None:
    policy = backoff.exponential(base=base, cap=cap)
    ceiling = policy.ceiling(n)
    assert ceiling == min(cap, base * 2.0 ** min(n - 1, 64))
    assert 0.0 <= policy.delay(n) <= ceiling <= cap


@given(base=seconds, cap=seconds, n=retry_numbers)
def test_exponential_ceiling_never_decreases(base: float, cap: float, n: int) -> None:
    policy = backoff.exponential(base=base, cap=cap)
    assert policy.ceiling(n) <= policy.ceiling(n + 1)


@given(base=seconds, cap=seconds, n=retry_numbers)
def test_equal_jitter_keeps_at_least_half(base: float, cap: float, n: int) -> None:
    policy = backoff.exponential(base=base, cap=cap, jitter="equal")
    assert policy.ceiling(n) / 2 <= policy.delay(n) <= policy.ceiling(n)
    assert backoff.exponential(base=base, cap=cap, jitter="none").delay(n) == policy.ceiling(n)


@given(delay=seconds, n=retry_numbers)
def test_fixed_is_constant(delay: float, n: int) -> None:
    assert backoff.fixed(delay).delay(n) == delay


@given(base=seconds, n=retry_numbers)
def test_linear_grows_by_base(base: float, n: int) -> None:
    assert backoff.linear(base).delay(n) == pytest.approx(base * n)


@given(base=st.floats(0, 1e3), power=st.floats(0, 4), n=st.integers(1, 100))
def test_polynomial_is_base_times_n_to_the_power(base: float, power: float, n: int) -> None:
    assert backoff.polynomial(base, power).delay(n) == pytest.approx(base * n**power)


def test_polynomial_60_2_gives_the_1_4_9_minute_schedule() -> None:
    policy = backoff.polynomial(60, 2)
    assert [policy.delay(n) for n in (1, 2, 3)] == [60, 240, 540]


@given(bad=st.one_of(st.floats(max_value=-1e-9), st.just(float("nan")), st.text(max_size=3)))
def test_policies_refuse_bad_numbers(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        backoff.exponential(base=bad)  # type: ignore[arg-type]


@given(attempt=st.integers(1, 20), max_attempts=st.integers(1, 20))
def test_classification_retries_only_while_attempts_remain(attempt: int, max_attempts: int) -> None:
    policy = RetryPolicy(max_attempts, backoff.fixed(1.5))
    verdict, delay = policy.classify(ConnectionError("x"), attempt)
    assert verdict == ("retry" if attempt < max_attempts else "failed")
    assert policy.classify(conveyor.Permanent("no"), attempt)[0] == "failed"
    after = policy.classify(conveyor.RetryAfter(7), attempt)
    assert after == (("retry", 7.0) if attempt < max_attempts else ("failed", 0.0))
    if verdict == "retry":
        assert delay == 1.5


class JobStateMachine(RuleBasedStateMachine):
    """Random operations on one backend; a model predicts each job's state."""

    url = ""

    @initialize()
    def setup(self) -> None:
        self.app = conveyor.App(self.url)
        self.app.declare("t", max_attempts=2)
        self.queue = "q" + secrets.token_hex(4)  # each run in a queue of its own
        self.model: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.leased: dict[str, ClaimedJob] = {}

    def teardown(self) -> None:
        self.app.close()

    def _check(self, job_id: str, before: str) -> None:
        record = self.app.get(job_id)
        assert record.state == self.model[job_id]
        if before != record.state:
            assert (before, record.state) in TRANSITIONS, (before, record.state)

    @rule(n=st.integers(1, 3))
    def enqueue(self, n: int) -> None:
        for job in self.app.enqueue_many([{"task": "t", "queue": self.queue}] * n):
            self.model[job.id] = "pending"
            self.attempts[job.id] = 0

    @rule(limit=st.integers(1, 4))
    def claim(self, limit: int) -> None:
        claimed = self.app.backend.claim(ClaimRequest((self.queue,), limit, 30.0, "w"))
        waiting = [i for i, s in self.model.items() if s in ("pending", "retry")]
        assert len(claimed) == min(limit, len(waiting))
        for job in claimed:
            assert self.model[job.id] in ("pending", "retry")
            self.attempts[job.id] += 1
            assert job.attempt == self.attempts[job.id]
            self.model[job.id] = "processing"
            self.leased[job.id] = job

    @precondition(lambda self: self.leased)
    @rule(data=st.data(), kind=st.sampled_from(["completed", "retry", "failed", "cancelled", "released"]))
    def finish(self, data: st.DataObject, kind: str) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.leased)))
        job = self.leased.pop(job_id)
        outcome = Outcome(job.id, job.lease_token, kind, job.attempt, "w", time.time(), time.time(), "1")  # type: ignore[arg-type]
        assert self.app.backend.finish_many([outcome]) == [True]
        self.model[job_id] = "pending" if kind == "released" else kind
        if kind == "released":
            self.attempts[job_id] -= 1
        self._check(job_id, "processing")
        # A second write with the same (now stale) lease changes nothing.
        assert self.app.backend.finish_many([outcome]) == [False]
        self._check(job_id, self.model[job_id])

    @precondition(lambda self: any(s in ("failed", "cancelled") for s in self.model.values()))
    @rule(data=st.data())
    def resubmit(self, data: st.DataObject) -> None:
        job_id = data.draw(
            st.sampled_from(sorted(i for i, s in self.model.items() if s in ("failed", "cancelled")))
        )
        before = self.model[job_id]
        job = self.app.resubmit(job_id)
        self.model[job_id] = "pending"
        # The budget resets, the history does not: attempt numbers keep counting.
        assert (job.attempt, job.prior_attempts) == (self.attempts[job_id], self.attempts[job_id])
        self._check(job_id, before)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        before = self.model[job_id]
        if before in ("completed", "failed", "cancelled"):
            with pytest.raises(conveyor.InvalidState):
                self.app.cancel(job_id)
        else:
            record = self.app.backend.cancel(job_id)
            if before == "processing":
                assert record.cancel_requested and record.state == "processing"
            else:
                self.model[job_id] = "cancelled"
        self._check(job_id, before)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        if self.model[job_id] == "processing":
            with pytest.raises(conveyor.InvalidState):
                self.app.delete(job_id)
            return
        self.app.delete(job_id)
        del self.model[job_id]
        assert self.app.backend.get(job_id) is None

    @invariant()
    def counts_match_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        counts = self.app.stats()["queues"].get(self.queue, dict.fromkeys(ALL_STATES, 0))
        expected = {s: sum(1 for v in self.model.values() if v == s) for s in ALL_STATES}
        assert {s: counts.get(s, 0) for s in ALL_STATES} == expected


def test_state_machine(backend_url: str) -> None:
    JobStateMachine.url = backend_url
    run_state_machine_as_test(
        JobStateMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
