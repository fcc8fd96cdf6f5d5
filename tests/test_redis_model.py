"""Redis against the reference: random operation sequences give SQLite's answers, atomically.

A hypothesis state machine drives the SQLite backend (the reference semantics)
and the Redis backend with the same operations and job ids, compares every
answer and every job's stored state, and checks the Redis structural
invariants after each step.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from backends import REDIS_URL, drop_redis_prefix, require_or_skip
from conveyor.backends.base import ClaimRequest, JobQuery, Lease, NewJob, Outcome
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.errors import ConveyorError
from conveyor.ids import new_job_id
from redis_invariants import check_redis_invariants

pytest.importorskip("redis")
from conveyor.backends.redis import RedisBackend

QUEUES = ("a", "b")
KINDS = ("completed", "retry", "failed", "cancelled", "released")
FAR = 10_000.0  # a delay that never comes due during a run

new_jobs = st.lists(
    st.fixed_dictionaries(
        {
            "queue": st.sampled_from(QUEUES),
            "priority": st.sampled_from([-1, 0, 0, 2]),
            "delay": st.sampled_from([0.0, 0.0, 0.0, FAR]),
            "key": st.sampled_from([None, None, "k1", "k2"]),
            "key_mode": st.sampled_from(["keep", "replace"]),
            "arg": st.integers(0, 3),
        }
    ),
    min_size=1,
    max_size=4,
)


class Held:
    """One claim as both backends handed it out."""

    def __init__(self, job_id: str, attempt: int, sqlite_token: str, redis_token: str) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.tokens = {"sqlite": sqlite_token, "redis": redis_token}


class RedisMatchesSQLite(RuleBasedStateMachine):
    """Both backends, one script of operations."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.sqlite = SQLiteBackend(f"sqlite:///{Path(self.tmp.name) / 'ref.db'}")
        self.prefix = "t" + secrets.token_hex(5)
        self.url = f"{REDIS_URL}?prefix={self.prefix}"
        self.redis = RedisBackend(self.url)
        self.ids: list[str] = []
        self.held: list[Held] = []
        #: Set once a job was resubmitted beside a waiting holder of its key: both then wait
        #: (the holder keeps answering for the key, docs/architecture.md), so from then on a
        #: key may have two waiting jobs and only the non-strict invariants apply.
        self.keys_shared = False

    def teardown(self) -> None:
        drop_redis_prefix(self.redis.clients.retrying, self.prefix)
        self.redis.close()
        self.sqlite.close()
        self.tmp.cleanup()

    def running_keys(self) -> set[str]:
        """Keys of running jobs: superseding such a holder has no reference answer (see enqueue)."""
        running = self.sqlite.list_jobs(JobQuery(status="processing", limit=1000)).items
        return {r.key for r in running if r.key}

    def waiting_keys(self) -> set[str]:
        """Keys of waiting jobs: resubmitting another job of such a key leaves two waiting."""
        waiting = [
            r
            for state in ("pending", "retry")
            for r in self.sqlite.list_jobs(JobQuery(status=state, limit=1000)).items  # type: ignore[arg-type]
        ]
        return {r.key for r in waiting if r.key}

    def both(self, op: str, *args: Any) -> Any:
        """Run op on both; same answer or same error class."""
        results = {}
        for name, backend in (("sqlite", self.sqlite), ("redis", self.redis)):
            try:
                results[name] = ("ok", getattr(backend, op)(*args))
            except ConveyorError as exc:
                results[name] = ("error", type(exc).__name__)
        assert results["sqlite"][0] == results["redis"][0], (op, results)
        return results

    # -- rules -------------------------------------------------------------------------
    @rule(items=new_jobs)
    def enqueue(self, items: list[dict[str, Any]]) -> None:
        # Superseding a running holder (replace mode) and then sending the holder back
        # to waiting has no reference answer: SQLite's unique index on waiting keys
        # rejects it. Such enqueues are made keep-mode here (see docs/redis.md).
        running_keys = self.running_keys()
        items = [{**i, "key_mode": "keep"} if i["key"] in running_keys else i for i in items]
        jobs = [
            NewJob(
                id=new_job_id(),
                task="t",
                queue=i["queue"],
                payload=f'{{"args":[{i["arg"]}],"kwargs":{{}}}}',
                max_attempts=2,
                priority=i["priority"],
                delay=i["delay"],
                key=i["key"],
                key_mode=i["key_mode"],
            )
            for i in items
        ]
        results = self.both("enqueue_many", jobs)
        assert results["sqlite"] == results["redis"]
        self.ids += [j.id for j in jobs]

    @rule(queues=st.sampled_from([("a",), ("b",), ("a", "b")]), limit=st.integers(1, 4), short=st.booleans())
    def claim(self, queues: tuple[str, ...], limit: int, short: bool) -> None:
        request = ClaimRequest(queues, limit, 0.0 if short else 60.0, "w")
        results = self.both("claim", request)
        mine, ref = results["redis"][1], results["sqlite"][1]
        assert [(j.id, j.attempt, j.priority, j.key) for j in mine] == [
            (j.id, j.attempt, j.priority, j.key) for j in ref
        ]
        self.held += [
            Held(r.id, r.attempt, s.lease_token, r.lease_token) for s, r in zip(ref, mine, strict=True)
        ]

    @precondition(lambda self: self.held)
    @rule(data=st.data(), kind=st.sampled_from(KINDS), far=st.booleans())
    def finish(self, data: st.DataObject, kind: str, far: bool) -> None:
        held = data.draw(st.sampled_from(self.held))
        answers = {}
        for name, backend in (("sqlite", self.sqlite), ("redis", self.redis)):
            outcome = Outcome(
                held.job_id,
                held.tokens[name],
                kind,  # type: ignore[arg-type]
                held.attempt,
                "w",
                started_at=None if kind == "released" else 1.0,
                finished_at=2.0,
                result="7" if kind == "completed" else None,
                error=None if kind in ("completed", "released") else "boom",
                retry_delay=FAR if far else 0.0,
            )
            answers[name] = backend.finish_many([outcome])
        assert answers["sqlite"] == answers["redis"], answers

    @precondition(lambda self: self.held)
    @rule()
    def extend(self) -> None:
        answers = {}
        for name, backend in (("sqlite", self.sqlite), ("redis", self.redis)):
            answers[name] = backend.extend_leases([Lease(h.job_id, h.tokens[name]) for h in self.held], 60.0)
        assert answers["sqlite"] == answers["redis"]

    @rule()
    def reap(self) -> None:
        results = self.both("reap_expired", 500)
        assert results["sqlite"] == results["redis"]

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), op=st.sampled_from(["cancel", "delete", "resubmit"]))
    def admin(self, data: st.DataObject, op: str) -> None:
        job_id = data.draw(st.sampled_from([*self.ids, "missing"]))
        record = self.sqlite.get(job_id)
        if op == "resubmit" and record is not None and record.key in self.running_keys():
            return  # resubmitting beside a running holder: the same gap as replace mode
        if op == "resubmit" and record is not None and record.key in self.waiting_keys():
            self.keys_shared = True
        self.both(op, job_id)

    @rule(status=st.sampled_from([None, "failed", "cancelled"]), queue=st.sampled_from([None, *QUEUES]))
    def resubmit_many(self, status: str | None, queue: str | None) -> None:
        waiting_room = [
            r.key
            for state in ("failed", "cancelled")
            for r in self.sqlite.list_jobs(JobQuery(status=state, limit=1000)).items  # type: ignore[arg-type]
        ]
        if set(waiting_room) & self.running_keys():
            return  # resubmitting beside a running holder: the same gap as replace mode
        if set(waiting_room) & self.waiting_keys():
            self.keys_shared = True
        results = self.both("resubmit_many", JobQuery(status=status, queue=queue))  # type: ignore[arg-type]
        assert results["sqlite"] == results["redis"]

    @rule(states=st.sampled_from([["completed"], ["failed", "cancelled"]]))
    def purge(self, states: list[str]) -> None:
        # Whole batches only: which jobs a partial batch takes is unspecified.
        results = self.both("purge", states, self.redis.now() + 1, 1000)
        assert results["sqlite"] == results["redis"]

    # -- checks ------------------------------------------------------------------------
    @invariant()
    def same_jobs(self) -> None:
        for job_id in self.ids:
            ref, mine = self.sqlite.get(job_id), self.redis.get(job_id)
            if ref is None or mine is None:
                assert ref is mine is None, job_id
                continue
            fields = (
                "state",
                "attempt",
                "priority",
                "queue",
                "key",
                "args",
                "result",
                "error",
                "cancel_requested",
            )
            assert {f: getattr(mine, f) for f in fields} == {f: getattr(ref, f) for f in fields}, job_id
            assert [(a.attempt, a.outcome) for a in mine.attempts] == [
                (a.attempt, a.outcome) for a in ref.attempts
            ]
        ref_stats, my_stats = self.sqlite.stats(), self.redis.stats()
        assert (my_stats.counts, my_stats.queues) == (ref_stats.counts, ref_stats.queues)
        assert (my_stats.oldest_pending_age_s is None) == (ref_stats.oldest_pending_age_s is None)
        for status in (None, "pending", "failed"):
            ref_page = self.sqlite.list_jobs(JobQuery(status=status, limit=5, offset=1))  # type: ignore[arg-type]
            my_page = self.redis.list_jobs(JobQuery(status=status, limit=5, offset=1))  # type: ignore[arg-type]
            assert my_page.total == ref_page.total
            assert [r.id for r in my_page.items] == [r.id for r in ref_page.items]
        check_redis_invariants(self.url, strict_keys=not self.keys_shared)


@pytest.fixture(autouse=True)
def _redis_available() -> None:
    require_or_skip("redis")


TestRedisMatchesSQLite = RedisMatchesSQLite.TestCase
TestRedisMatchesSQLite.settings = settings(
    max_examples=50,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
