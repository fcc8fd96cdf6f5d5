"""In-process storage for users' unit tests: ``memory://NAME``, the whole contract, no service.

A store lives in this process only: it is neither shared with other processes
nor durable. Within one process every backend opened on the same URL shares one
store (so a producer App and a Worker on ``memory://tests`` see the same jobs);
a test that wants a clean slate uses a name of its own, or calls
:func:`drop_store` when done.

One lock guards a store and a condition on it wakes idle workers when a job may
have become claimable. Leases and due times use this process's clock
(``time.time()``). Payloads and results are kept as the JSON text the other
engines store, so every job goes through the same JSON round trip.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import BadURL, ConfigurationError
from ..states import LIVE_STATES, RESUBMITTABLE, State
from . import flow, kit
from .base import (
    WORKER_LOST,
    ActionRecord,
    AlertRecord,
    AttemptRecord,
    BulkDeletion,
    ClaimedJob,
    ClaimRequest,
    EnqueueResult,
    FinishWatch,
    JobQuery,
    JobRecord,
    Lease,
    LeaseRenewal,
    NewJob,
    Outcome,
    Page,
    ReapResult,
    ScheduleRecord,
)
from .flow import QueueSettings
from .memory_flow import MemoryFlow
from .memory_maintenance import MemoryMaintenance
from .memory_observe import MemoryObservability

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_WAITING = frozenset({"pending", "retry"})


def parse_memory_url(url: str) -> str:
    """The store name of ``memory://NAME``, or BadURL saying what a valid URL looks like."""
    parts = urlsplit(url)
    if parts.scheme != "memory":
        raise BadURL(f"not a memory URL: {url!r} (expected memory://NAME)")
    name = parts.netloc + parts.path.rstrip("/")
    if parts.query or parts.fragment:
        raise BadURL(f"memory URL {url!r} takes no options: write memory://NAME")
    if not _NAME.match(name):
        raise BadURL(f"memory URL {url!r} needs a store name matching {_NAME.pattern}, e.g. memory://tests")
    return name


@dataclass(slots=True)
class _Job:
    """One stored job: the kit's JOB_FIELDS, plus the lease token that fences writes."""

    id: str
    task: str
    queue: str
    state: State
    payload: str
    max_attempts: int
    priority: int
    run_at: float
    created_at: float
    key: str | None
    on_complete: str | None
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    worker: str | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    prior_attempts: int = 0
    group_key: str | None = None
    #: The fair-order rank (the flow module's virtual time); 0 without a group.
    fair_rank: int = 0
    schedule: str | None = None
    scheduled_for: float | None = None
    progress: str | None = None  # JSON text, as the other engines store it
    trace_context: str | None = None

    def __getitem__(self, name: str) -> Any:
        """Read a column by name, as the kit's row mapping does."""
        return getattr(self, name)

    def lapsed(self, now: float) -> bool:
        """True when the job's lease ran out before ``now``."""
        return self.lease_expires_at is not None and self.lease_expires_at < now

    def release_lease(self) -> None:
        """The job leaves ``processing``: its lease no longer fences anything."""
        self.lease_token = None
        self.lease_expires_at = None


@dataclass(slots=True)
class _Store:
    """Every job, attempt record and key of one ``memory://NAME``, behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    jobs: dict[str, _Job] = field(default_factory=dict)
    #: Ids of waiting (pending or retry) jobs by queue: what a claim looks through.
    waiting: dict[str, set[str]] = field(default_factory=dict)
    #: Ids of the jobs carrying each idempotency key.
    keyed: dict[str, set[str]] = field(default_factory=dict)
    #: Attempt records, oldest first, overall and by job.
    audit_log: list[AttemptRecord] = field(default_factory=list)
    attempts: dict[str, list[AttemptRecord]] = field(default_factory=dict)
    #: The operators' actions, oldest first, and the ids of those naming each job.
    actions: list[ActionRecord] = field(default_factory=list)
    job_actions: dict[str, list[int]] = field(default_factory=dict)
    #: Ids of processing jobs by queue: what a flow claim counts against concurrency limits.
    processing: dict[str, set[str]] = field(default_factory=dict)
    #: Flow control: settings of managed queues, their fair-order clocks, each group's
    #: last rank, and the starts (time, group) within the longest rate window.
    settings: dict[str, QueueSettings] = field(default_factory=dict)
    clocks: dict[str, int] = field(default_factory=dict)
    group_ranks: dict[tuple[str, str], int] = field(default_factory=dict)
    starts: dict[str, deque[tuple[float, str | None]]] = field(default_factory=dict)
    #: Schedules and failure alerts by name (see memory_maintenance.py).
    schedules: dict[str, ScheduleRecord] = field(default_factory=dict)
    alerts: dict[str, AlertRecord] = field(default_factory=dict)
    #: Watches of jobs reaching a final state (``Job.result`` waiting), woken directly.
    finishes: kit.FinishHub = field(default_factory=kit.FinishHub)
    #: The worker registry: id -> (beat JSON, last seen, expires at).
    workers: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


def _store(name: str) -> _Store:
    with _STORES_LOCK:
        found = _STORES.get(name)
        if found is None:
            found = _STORES[name] = _Store()
        return found


def drop_store(name: str) -> None:
    """Forget the store of ``memory://name`` (backends still open on it keep their copy)."""
    with _STORES_LOCK:
        _STORES.pop(name, None)


class MemoryBackend(MemoryMaintenance, MemoryFlow, MemoryObservability):
    """The Backend protocol on an in-process store (see module docstring)."""

    _store: _Store

    def __init__(self, url: str, *, key_retention: float = 86400.0) -> None:
        self.url = url
        self.name = parse_memory_url(url)
        self.key_retention = key_retention
        self._store = _store(self.name)

    def __repr__(self) -> str:
        return f"<MemoryBackend {self.name}>"

    # -- life cycle ------------------------------------------------------------------
    def migrate(self) -> None:
        """Nothing to install: a store is created on first use."""

    def close(self) -> None:
        """Nothing to release; the store outlives this handle (see :func:`drop_store`)."""

    def now(self) -> float:
        """This process's clock."""
        return time.time()

    # -- producers -------------------------------------------------------------------
    def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """Store jobs atomically, honouring idempotency keys (the kit's key rule)."""
        if connection is not None:
            raise ConfigurationError(
                "transactional enqueue (connection=) needs PostgreSQL or SQLite: the memory backend "
                "has no transaction of yours to join; enqueue after your commit instead"
            )
        store = self._store
        with store.changed:
            now = time.time()
            results = [self._enqueue_one(job, now) for job in jobs]
            if results:
                store.changed.notify_all()
        return results

    def _enqueue_one(self, new: NewJob, now: float) -> EnqueueResult:
        """Store one job, or answer with the job holding its key. Call with the lock held."""
        store = self._store
        existing = store.jobs.get(new.id)
        if existing is not None:  # a repeated call: report the job, never store it twice
            return EnqueueResult(existing.id, existing.state, False)
        holder = self._key_holder(new.key, now) if new.key is not None else None
        if holder is not None:
            if new.key_mode == "keep":
                return EnqueueResult(holder.id, holder.state, False)
            if holder.state in _WAITING:
                holder.payload, holder.priority = new.payload, new.priority
                holder.run_at = kit.due_time(new, now)
                holder.max_attempts, holder.on_complete = new.max_attempts, new.on_complete
                holder.trace_context = new.trace_context
                return EnqueueResult(holder.id, holder.state, False)
            # replace mode with a running or finished holder: the newest arguments run next.
        job = _Job(
            id=new.id,
            task=new.task,
            queue=new.queue,
            state="pending",
            payload=new.payload,
            max_attempts=new.max_attempts,
            priority=new.priority,
            run_at=kit.due_time(new, now),
            created_at=now,
            key=new.key,
            on_complete=new.on_complete,
            group_key=new.group,
            trace_context=new.trace_context,
        )
        if new.group is not None:
            job.fair_rank = self._rank(new.queue, new.group)
        store.jobs[job.id] = job
        store.waiting.setdefault(job.queue, set()).add(job.id)
        if job.key is not None:
            store.keyed.setdefault(job.key, set()).add(job.id)
        return EnqueueResult(job.id, "pending", True)

    def _rank(self, queue: str, group: str) -> int:
        """The next fair rank of ``group`` (flow module); its queue becomes managed. Lock held."""
        store = self._store
        store.settings.setdefault(queue, QueueSettings(queue))
        rank = flow.first_rank(store.group_ranks.get((queue, group)), store.clocks.get(queue))
        store.group_ranks[queue, group] = rank
        return rank

    def _key_holder(self, key: str, now: float) -> _Job | None:
        """The job answering for ``key``: newest waiting, else newest running or recently completed."""
        store = self._store
        best: tuple[bool, str] | None = None
        holder: _Job | None = None
        for job_id in store.keyed.get(key, ()):
            job = store.jobs[job_id]
            recent = job.state == "completed" and (job.finished_at or 0.0) >= now - self.key_retention
            if job.state not in LIVE_STATES and not recent:
                continue
            rank = (job.state in _WAITING, job.id)
            if best is None or rank > best:
                best, holder = rank, job
        return holder

    # -- workers ---------------------------------------------------------------------
    def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs in the kit's claim order."""
        if request.limit < 1:
            return []
        store = self._store
        token = secrets.token_hex(8)
        with store.lock:
            now = time.time()
            queues = flow.names_of(request.queues)
            plain = [q for q in queues if q not in store.settings]
            due = [job for job in self._waiting_jobs(plain) if job.run_at <= now]
            start_limit = request.limit if request.start_limit is None else request.start_limit
            for queue in queues:
                if queue in store.settings and start_limit > 0:
                    picked = self._flow_pick(store.settings[queue], min(request.limit, start_limit), now)
                    start_limit -= len(picked)
                    due.extend(picked)
            due.sort(key=kit.claim_order)
            claimed: list[ClaimedJob] = []
            for job in due[: request.limit]:
                store.waiting[job.queue].discard(job.id)
                store.processing.setdefault(job.queue, set()).add(job.id)
                settings = store.settings.get(job.queue)
                if settings is not None:
                    store.clocks[job.queue] = max(store.clocks.get(job.queue, 0), job.fair_rank)
                    if settings.rated:
                        store.starts.setdefault(job.queue, deque()).append((now, job.group_key))
                job.state = "processing"
                job.attempt += 1
                job.lease_token = token
                job.lease_expires_at = now + request.lease_seconds
                job.worker = request.worker_id
                job.started_at = now
                claimed.append(_claimed(job, token))
        return claimed

    def _waiting_jobs(self, queues: Iterable[str]) -> list[_Job]:
        store = self._store
        return [store.jobs[i] for queue in dict.fromkeys(queues) for i in store.waiting.get(queue, ())]

    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Sleep until a job in ``queues`` is due (woken by enqueues and requeues) or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._store.changed:
            while True:
                left = deadline - time.monotonic()
                due_times = [job.run_at for job in self._waiting_jobs(queues)]
                due_in = min(due_times) - time.time() if due_times else None
                if (due_in is not None and due_in <= 0) or left <= 0:
                    return
                self._store.changed.wait(left if due_in is None else min(left, due_in))

    def extend_leases(self, leases: Sequence[Lease], lease_seconds: float) -> LeaseRenewal:
        """Renew each lease still held (same token); report lost ones and cancel requests."""
        lost: set[str] = set()
        flagged: set[str] = set()
        with self._store.lock:
            expires = time.time() + lease_seconds
            for lease in leases:
                job = self._held(lease.job_id, lease.lease_token)
                if job is None:
                    lost.add(lease.job_id)
                    continue
                job.lease_expires_at = expires
                if job.cancel_requested:
                    flagged.add(job.id)
        return LeaseRenewal(frozenset(lost), frozenset(flagged - lost))

    def _held(self, job_id: str, token: str) -> _Job | None:
        """The job if this lease token still holds it (the fence), else None."""
        job = self._store.jobs.get(job_id)
        if job is None or job.state != "processing" or job.lease_token != token:
            return None
        return job

    def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes fenced by lease token, with their audit records and follow-ups, atomically."""
        for outcome in outcomes:
            if outcome.kind not in kit.OUTCOME_KINDS:
                raise kit.unknown_outcome_kind(outcome.kind)
        store = self._store
        applied: list[bool] = []
        with store.changed:
            now = time.time()
            for outcome in outcomes:
                job = self._held(outcome.job_id, outcome.lease_token)
                applied.append(job is not None)
                if job is None:
                    continue
                self._apply(job, outcome, now)
                if outcome.started_at is not None:
                    self._audit(kit.attempt_record(kit.outcome_attempt(outcome, job.payload)))
                for follow_up in outcome.follow_ups:
                    self._enqueue_one(follow_up, now)
            store.changed.notify_all()
        store.finishes.finished(kit.final_ids(outcomes, applied))
        return applied

    def _apply(self, job: _Job, outcome: Outcome, now: float) -> None:
        """One outcome on the job that holds its lease. Call with the lock held."""
        job.release_lease()
        self._store.processing[job.queue].discard(job.id)
        if outcome.kind == "released":  # back in line where it was; the attempt did not count
            job.state, job.attempt, job.worker, job.started_at = "pending", job.attempt - 1, None, None
        elif outcome.kind == "retry":
            job.state, job.run_at = "retry", now + outcome.retry_delay
            job.error, job.traceback = outcome.error, outcome.traceback
        elif outcome.kind == "completed":
            job.state, job.finished_at, job.result = "completed", now, outcome.result
            job.error, job.traceback = None, None
        else:  # failed, cancelled
            job.state, job.finished_at = outcome.kind, now
            job.error, job.traceback = outcome.error, outcome.traceback
        if job.state in _WAITING:
            self._store.waiting.setdefault(job.queue, set()).add(job.id)

    def _audit(self, record: AttemptRecord) -> None:
        self._store.audit_log.append(record)
        self._store.attempts.setdefault(record.job_id, []).append(record)

    def reap_expired(self, limit: int = 500) -> ReapResult:
        """Apply the kit's reap verdict to lapsed leases, oldest first."""
        store = self._store
        requeued = failed = 0
        finished: list[str] = []
        with store.changed:
            now = time.time()
            expired = [
                job
                for job in store.jobs.values()
                if job.state == "processing"
                and job.lease_expires_at is not None
                and job.lease_expires_at < now
            ]
            expired.sort(key=lambda job: job.lease_expires_at or 0.0)
            for job in expired[:limit]:
                verdict = kit.reap_verdict(
                    job.cancel_requested, job.attempt, job.max_attempts, job.prior_attempts
                )
                job.release_lease()
                store.processing[job.queue].discard(job.id)
                job.error = WORKER_LOST
                if verdict == "pending":
                    job.state, job.run_at = "pending", now
                    store.waiting.setdefault(job.queue, set()).add(job.id)
                    requeued += 1
                else:
                    job.state, job.finished_at, job.traceback = verdict, now, None
                    finished.append(job.id)
                    if verdict == "failed":
                        failed += 1
                audit = kit.reaped_attempt(
                    job.id, job.attempt, job.worker, job.started_at, now, verdict, job.payload
                )
                self._audit(kit.attempt_record(audit))
            if requeued:
                store.changed.notify_all()
        store.finishes.finished(finished)
        return ReapResult(requeued, failed)

    # -- results ---------------------------------------------------------------------
    def watch_finishes(self, job_ids: Sequence[str], wake: Callable[[], None]) -> FinishWatch:
        """Woken directly by this store's writes: always live."""
        return self._store.finishes.watch(job_ids, wake)

    # -- admin -----------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempt records."""
        with self._store.lock:
            job = self._store.jobs.get(job_id)
            if job is None:
                return None
            return kit.job_record(job, self._store.attempts.get(job_id, ()))

    def _matching(self, query: JobQuery) -> list[_Job]:
        """Jobs matching the query's filters, newest first (created_at desc, id desc)."""
        jobs = [
            job
            for job in self._store.jobs.values()
            if (query.status is None or job.state == query.status)
            and (query.queue is None or job.queue == query.queue)
            and (query.task is None or job.task == query.task)
            and (query.created_after is None or job.created_at >= query.created_after)
            and (query.created_before is None or job.created_at < query.created_before)
            and (query.error is None or (job.error is not None and query.error in job.error))
            and (query.group is None or job.group_key == query.group)
        ]
        jobs.sort(key=lambda job: (job.created_at, job.id), reverse=True)
        return jobs

    def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, and the total that matched."""
        with self._store.lock:
            jobs = self._matching(query)
            page = jobs[query.offset : query.offset + query.limit]
            return Page([kit.job_record(job) for job in page], len(jobs))

    def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending with a fresh attempt budget."""
        with self._store.changed:
            job = self._store.jobs.get(job_id)
            if job is None:
                raise kit.job_not_found(job_id)
            if job.state not in RESUBMITTABLE:
                raise kit.cannot_resubmit(job_id, job.state)
            self._resubmit(job, payload, time.time())
            self._store.changed.notify_all()
            return kit.job_record(job, self._store.attempts.get(job_id, ()))

    def _resubmit(self, job: _Job, payload: str | None, now: float) -> None:
        # The kit's resubmit history rule: numbers go on, the budget restarts.
        job.state, job.prior_attempts, job.run_at = "pending", job.attempt, now
        job.payload = job.payload if payload is None else payload
        job.started_at = job.finished_at = None
        job.error = job.traceback = job.result = job.worker = job.progress = None
        job.cancel_requested = False
        self._store.waiting.setdefault(job.queue, set()).add(job.id)

    def resubmit_many(self, query: JobQuery, payload: str | None = None) -> list[str]:
        """Resubmit every failed/cancelled job matching ``query``, oldest first; their ids."""
        with self._store.changed:
            now = time.time()
            jobs = [job for job in self._matching(query) if job.state in RESUBMITTABLE]
            jobs.reverse()  # oldest first, as the other engines do
            for job in jobs:
                self._resubmit(job, payload, now)
            if jobs:
                self._store.changed.notify_all()
        return [job.id for job in jobs]

    def cancel(self, job_id: str) -> JobRecord:
        """Waiting: cancelled now. Processing: flagged; the worker's heartbeat carries it."""
        with self._store.lock:
            job = self._store.jobs.get(job_id)
            if job is None:
                raise kit.job_not_found(job_id)
            if job.state in _WAITING:
                self._store.waiting[job.queue].discard(job.id)
                job.state, job.finished_at, job.error = "cancelled", time.time(), kit.CANCELLED_BEFORE_RUN
            elif job.state == "processing":
                job.cancel_requested = True
            else:
                raise kit.cannot_cancel(job_id, job.state)
            record = kit.job_record(job, self._store.attempts.get(job_id, ()))
        if record.state == "cancelled":
            self._store.finishes.finished([job_id])
        return record

    def delete(self, job_id: str) -> None:
        """Delete a job that is not processing, with its attempt records."""
        with self._store.lock:
            job = self._store.jobs.get(job_id)
            if job is None:
                raise kit.job_not_found(job_id)
            if job.state == "processing":
                raise kit.cannot_delete(job_id)
            self._forget([job])
        self._store.finishes.finished([job_id])  # a waiter learns that it is gone

    def delete_many(self, query: JobQuery) -> BulkDeletion:
        """Delete every matching job but the processing ones (counted as skipped)."""
        with self._store.lock:
            matched = self._matching(query)
            doomed = [job for job in matched if job.state != "processing"]
            self._forget(doomed)
        self._store.finishes.finished([job.id for job in doomed])  # as delete: waiters learn they are gone
        return BulkDeletion([job.id for job in doomed], len(matched) - len(doomed))

    def _forget(self, jobs: list[_Job]) -> None:
        """Remove jobs with their attempt records and key entries. Call with the lock held."""
        store = self._store
        gone = {job.id for job in jobs}
        for job in jobs:
            del store.jobs[job.id]
            store.waiting.get(job.queue, set()).discard(job.id)
            store.attempts.pop(job.id, None)
            if job.key is not None:
                holders = store.keyed[job.key]
                holders.discard(job.id)
                if not holders:
                    del store.keyed[job.key]
        store.audit_log = [record for record in store.audit_log if record.job_id not in gone]

    def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Delete up to ``batch_size`` jobs in ``states`` finished before ``before``, oldest first."""
        wanted = set(states)
        with self._store.lock:
            doomed = [
                job
                for job in self._store.jobs.values()
                if job.state in wanted and job.finished_at is not None and job.finished_at < before
            ]
            doomed.sort(key=lambda job: job.finished_at or 0.0)
            self._forget(doomed[: max(batch_size, 0)])
        return min(len(doomed), max(batch_size, 0))


def _claimed(job: _Job, token: str) -> ClaimedJob:
    return ClaimedJob(
        id=job.id,
        task=job.task,
        queue=job.queue,
        payload=job.payload,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        lease_token=token,
        priority=job.priority,
        key=job.key,
        on_complete=job.on_complete,
        created_at=job.created_at,
        run_at=job.run_at,
        prior_attempts=job.prior_attempts,
        group=job.group_key,
        trace_context=job.trace_context,
    )


__all__ = ["MemoryBackend", "drop_store", "parse_memory_url"]
