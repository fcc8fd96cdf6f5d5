"""The limiter against a reference model, on every backend.

Random claims (with live or already-lapsed leases), finishes, reaps and limit changes
run against one queue with a concurrency and a group concurrency limit. A small model
predicts exactly how many jobs each claim may take and of which groups; after every
step no limit is exceeded, and after every reap the slots of reaped leases are free
again (a later claim fills them), so none leaks.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter

from hypothesis import HealthCheck, settings
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
from conveyor.backends.base import ClaimedJob, ClaimRequest, Outcome

GROUPS = ("a", "b", "c", None)


class LimiterMachine(RuleBasedStateMachine):
    """One queue with limits; the model knows each job's group and whether it waits or runs."""

    url = ""

    @initialize(concurrency=st.integers(1, 4), group_concurrency=st.sampled_from([1, 2, None]))
    def setup(self, concurrency: int, group_concurrency: int | None) -> None:
        self.app = conveyor.App(self.url)
        self.app.declare("t", max_attempts=1000)
        self.app.backend.reap_expired()  # the store is shared by the examples: start with no lapsed lease
        self.queue = "q" + secrets.token_hex(4)
        self.app.configure_queue(self.queue, concurrency=concurrency, group_concurrency=group_concurrency)
        self.concurrency, self.group_concurrency = concurrency, group_concurrency
        self.group: dict[str, str | None] = {}
        self.waiting: set[str] = set()
        #: Held leases; ``lapsed`` ones were claimed with a lease already run out.
        self.held: dict[str, ClaimedJob] = {}
        self.lapsed: set[str] = set()

    def teardown(self) -> None:
        if hasattr(self, "app"):
            self.app.backend.reap_expired()
            self.app.close()

    # -- the reference model -----------------------------------------------------------------
    def running(self, group: str | None = None) -> int:
        return sum(1 for i in self.held if group is None or self.group[i] == group)

    def expected_claims(self, limit: int) -> tuple[int, dict[str | None, int]]:
        """How many jobs a claim of ``limit`` takes, and at most how many of each group."""
        room = max(0, min(limit, self.concurrency - self.running()))
        waiting = Counter(self.group[i] for i in self.waiting)
        caps: dict[str | None, int] = {}
        for group, n in waiting.items():
            cap = n
            if group is not None and self.group_concurrency is not None:
                cap = min(n, max(0, self.group_concurrency - self.running(group)))
            caps[group] = cap
        return min(room, sum(caps.values())), caps

    # -- operations ----------------------------------------------------------------------------
    @rule(groups=st.lists(st.sampled_from(GROUPS), min_size=1, max_size=4))
    def enqueue(self, groups: list[str | None]) -> None:
        items = [{"task": "t", "queue": self.queue, "group": g} for g in groups]
        for job, group in zip(self.app.enqueue_many(items), groups, strict=True):
            self.group[job.id] = group
            self.waiting.add(job.id)

    @rule(limit=st.integers(1, 6), lapsed=st.booleans())
    def claim(self, limit: int, lapsed: bool) -> None:
        expected, caps = self.expected_claims(limit)
        lease = -1.0 if lapsed else 60.0  # a lease that has already run out: the reaper's next catch
        claimed = self.app.backend.claim(ClaimRequest((self.queue,), limit, lease, "w"))
        assert len(claimed) == expected, (len(claimed), expected, caps)
        taken = Counter(job.group for job in claimed)
        assert all(n <= caps[g] for g, n in taken.items()), (taken, caps)
        for job in claimed:
            assert job.id in self.waiting and job.group == self.group[job.id]
            self.waiting.discard(job.id)
            self.held[job.id] = job
            if lapsed:
                self.lapsed.add(job.id)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.held)))
        job = self.held.pop(job_id)
        self.lapsed.discard(job_id)
        now = time.time()
        outcome = Outcome(job.id, job.lease_token, "completed", job.attempt, "w", now, now, "null")
        assert self.app.backend.finish_many([outcome]) == [True]

    @rule()
    def reap(self) -> None:
        result = self.app.backend.reap_expired()
        assert (result.requeued, result.failed) == (len(self.lapsed), 0)
        for job_id in self.lapsed:
            del self.held[job_id]
            self.waiting.add(job_id)
        self.lapsed.clear()

    @rule(concurrency=st.integers(1, 4))
    def change_the_limit(self, concurrency: int) -> None:
        self.app.configure_queue(self.queue, concurrency=concurrency)
        self.concurrency = concurrency

    # -- what must always hold -------------------------------------------------------------------
    @invariant()
    def no_limit_is_exceeded_and_the_store_matches_the_model(self) -> None:
        if not hasattr(self, "app"):
            return
        processing = self.app.jobs(status="processing", queue=self.queue, limit=100).items
        assert {job.id for job in processing} == set(self.held)
        by_group = Counter(job.group for job in processing)
        if self.group_concurrency is not None:
            assert all(n <= self.group_concurrency for g, n in by_group.items() if g is not None), by_group
        # The queue limit may have been lowered below what already runs; claims then take nothing.
        pending = self.app.jobs(status="pending", queue=self.queue, limit=100).total
        assert pending == len(self.waiting)


def test_the_limiter_matches_its_model(backend_url: str) -> None:
    LimiterMachine.url = backend_url
    run_state_machine_as_test(
        LimiterMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
