"""The one Backend protocol every storage engine implements, and its value types.

The operations are batch-shaped (a worker claims, renews and finishes many jobs
per round trip) and noun-first. Times crossing this boundary are POSIX seconds
(floats); a backend measures leases and due times on its own clock (the
database's or server's ``now``), so worker clocks never decide a lease. The
rules every engine applies the same way (the reap verdict, the idempotency key
rule, the claim order) are written once in :mod:`conveyor.backends.kit`.

Flow control (queue and group limits, fairness, pause) lives inside ``claim``;
its settings travel as ``queue_update``/``queue_usage`` and its rules are
written once in :mod:`conveyor.backends.flow`. Schedules and failure alerts are
the ``schedule_*`` and ``alert_*`` families below, each firing one atomic
compare-and-set with the jobs it stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from ..states import State
from .flow import QueueSettings, QueueUpdate, QueueUsage
from .throughput import Throughput

KeyMode = Literal["keep", "replace"]
OutcomeKind = Literal["completed", "retry", "failed", "cancelled", "released"]

#: The error recorded on a job whose lease ran out (its worker died or hung).
WORKER_LOST = "worker lost: lease expired before the job finished"


class NewJob(NamedTuple):
    """A job to store. ``payload`` is the JSON text ``{"args": [...], "kwargs": {...}}``.

    A named tuple rather than a frozen dataclass: bulk enqueue builds one per job,
    and a tuple is built in half the time.
    """

    id: str
    task: str
    queue: str
    payload: str
    max_attempts: int
    priority: int = 0
    #: Absolute due time (POSIX seconds). ``None``: ``delay`` seconds after the backend's now.
    run_at: float | None = None
    delay: float = 0.0
    key: str | None = None
    key_mode: KeyMode = "keep"
    on_complete: str | None = None
    #: The job's group for flow control (fairness and group limits), or None.
    group: str | None = None
    #: The W3C ``traceparent`` of the span the job was enqueued in (None: no trace).
    trace_context: str | None = None


class EnqueueResult(NamedTuple):
    """What ``enqueue_many`` did with one NewJob: created it, or matched its key.

    A named tuple, like NewJob: bulk enqueue returns one per job (a quarter of the
    frozen dataclass's cost to build).
    """

    id: str
    state: State
    created: bool


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Claim up to ``limit`` due jobs from ``queues`` for ``lease_seconds``.

    ``start_limit`` caps the jobs taken from managed queues (flow control): a worker
    passes its free run slots, so it never buffers jobs of a limited queue that it
    cannot start at once, and a limit counts starts, not prefetched claims.
    """

    queues: tuple[str, ...]
    limit: int
    lease_seconds: float
    worker_id: str
    start_limit: int | None = None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A leased job, as a worker sees it. ``lease_token`` fences every later write."""

    id: str
    task: str
    queue: str
    payload: str
    attempt: int
    max_attempts: int
    lease_token: str
    priority: int
    key: str | None
    on_complete: str | None
    created_at: float
    run_at: float
    group: str | None = None
    #: Attempts run before the latest resubmit; this submission's budget is spent when
    #: ``attempt - prior_attempts`` reaches ``max_attempts``.
    prior_attempts: int = 0
    #: The W3C ``traceparent`` stored at enqueue (None: no trace).
    trace_context: str | None = None

    @property
    def run_in_submission(self) -> int:
        """Which run of the current submission this is (1 for the first after a resubmit)."""
        return self.attempt - self.prior_attempts


@dataclass(frozen=True, slots=True)
class Lease:
    """The fence of one claim: writes apply only while the job holds this token."""

    job_id: str
    lease_token: str


@dataclass(frozen=True, slots=True)
class LeaseRenewal:
    """Result of ``extend_leases``: which leases are gone, which jobs were asked to cancel."""

    lost: frozenset[str]
    cancel_requested: frozenset[str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, with what its audit record says.

    ``completed``/``failed``/``cancelled`` are final; ``retry`` waits ``retry_delay``
    seconds; ``released`` puts the job back in ``pending`` without counting the
    attempt (graceful shutdown, or a prefetched job that never started).
    ``follow_ups`` are jobs stored with the outcome, only if it applies (the
    ``on_complete`` callback): a crash can never keep one and lose the other.
    """

    job_id: str
    lease_token: str
    kind: OutcomeKind
    attempt: int
    worker: str
    started_at: float | None = None
    finished_at: float | None = None
    result: str | None = None  # JSON text
    error: str | None = None
    traceback: str | None = None
    retry_delay: float = 0.0
    status_code: int | None = None
    response_excerpt: str | None = None
    follow_ups: tuple[NewJob, ...] = ()
    #: The trace id (32 hex digits) of the span the attempt ran in, for its audit record.
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReapResult:
    """What the reaper did: jobs returned to the queue, jobs failed as poison pills."""

    requeued: int
    failed: int


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Filters for the admin listing and bulk operations (all optional)."""

    status: State | None = None
    queue: str | None = None
    task: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    #: Only jobs whose last error contains this text (case-sensitive, matched as plain text).
    error: str | None = None
    #: Only jobs of this flow-control group.
    group: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class BulkDeletion:
    """What ``delete_many`` did: the ids it deleted, and how many matches it left (processing)."""

    deleted: list[str]
    skipped: int


@dataclass(frozen=True, slots=True)
class NewAction:
    """An operator's action to record: who (``actor``, ``role``), what, on which jobs.

    ``actor`` names the caller, never a secret: ``admin:ops`` (a named API key),
    ``read:3fa9c2d1`` (an unnamed key's fingerprint), ``python`` or ``cli``.
    ``detail`` is JSON text (the filter of a bulk action, whether arguments were
    edited...); ``count`` is how many jobs the action changed.
    """

    actor: str
    action: str
    role: str | None = None
    job_ids: tuple[str, ...] = ()
    detail: str | None = None
    count: int = 0


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One recorded action, as ``list_actions`` returns it (``job_id`` set for one-job actions)."""

    id: int
    at: datetime
    actor: str
    role: str | None
    action: str
    job_id: str | None
    count: int
    detail: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/actions``."""
        return {
            "id": self.id,
            "at": _iso(self.at),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "job_id": self.job_id,
            "count": self.count,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of one job, as the audit trail keeps it."""

    job_id: str
    attempt: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error: str | None = None
    traceback: str | None = None
    status_code: int | None = None
    response_excerpt: str | None = None
    #: The arguments this attempt ran with (None: recorded before the audit trail kept them).
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    trace_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the HTTP API and ``--json``."""
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "worker": self.worker,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "outcome": self.outcome,
            "error": self.error,
            "traceback": self.traceback,
            "status_code": self.status_code,
            "response_excerpt": self.response_excerpt,
            "args": self.args,
            "kwargs": self.kwargs,
            "trace_id": self.trace_id,
        }


@dataclass(slots=True)
class JobRecord:
    """Everything stored about one job."""

    id: str
    task: str
    queue: str
    state: State
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int
    max_attempts: int
    priority: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    key: str | None = None
    worker: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    on_complete: str | None = None
    group: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    #: Attempts run before the latest resubmit: numbers keep counting, the budget restarts.
    prior_attempts: int = 0
    #: The schedule that enqueued the job, and the tick it ran for (None for other jobs).
    schedule: str | None = None
    scheduled_for: datetime | None = None
    #: ``{"fraction", "message", "updated_at"}`` as the task last reported it, or None.
    progress: dict[str, Any] | None = None
    #: The trace the job was enqueued in (32 hex digits), or None.
    trace_id: str | None = None

    @property
    def status(self) -> State:
        """The state under its JSON name."""
        return self.state

    def to_dict(self, *, with_attempts: bool = True) -> dict[str, Any]:
        """The JSON shape of ``GET /api/jobs/{id}`` (``status`` carries the state)."""
        data: dict[str, Any] = {
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "status": self.state,
            "args": self.args,
            "kwargs": self.kwargs,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "prior_attempts": self.prior_attempts,
            "priority": self.priority,
            "run_at": _iso(self.run_at),
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "result": self.result,
            "error": self.error,
            "traceback": self.traceback,
            "key": self.key,
            "worker": self.worker,
            "cancel_requested": self.cancel_requested,
            "on_complete": self.on_complete,
            "group": self.group,
            "schedule": self.schedule,
            "scheduled_for": _iso(self.scheduled_for),
            "progress": self.progress,
            "trace_id": self.trace_id,
        }
        if with_attempts:
            data["attempts"] = [a.to_dict() for a in self.attempts]
        return data


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing and the total that matched."""

    items: list[JobRecord]
    total: int


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts by state, overall and per queue, and the age of the oldest due pending job."""

    counts: dict[str, int]
    queues: dict[str, dict[str, int]]
    oldest_pending_age_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/queue/stats``."""
        return {
            "counts": dict(self.counts),
            "queues": {q: dict(c) for q, c in self.queues.items()},
            "oldest_pending_age_s": self.oldest_pending_age_s,
        }


# -- schedules and alerts (the maintenance services' state) ------------------------------
MissedPolicy = Literal["latest", "skip"]


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule's definition as stored: which task, when (``cron`` or ``every``), where.

    ``payload`` is the JSON text of its args and kwargs (as a job's). ``next_run_at`` is
    the first tick, used when the schedule is new or its timing changed.
    """

    name: str
    task: str
    cron: str | None
    every: float | None
    tz: str
    payload: str
    queue: str | None
    missed: MissedPolicy
    next_run_at: float


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A stored schedule: its definition and its run-time state."""

    spec: ScheduleSpec
    paused: bool
    next_run_at: float
    last_run_at: float | None
    last_job_id: str | None


class ScheduledJob(NamedTuple):
    """One tick's job: stored with ``schedule`` (the name) and ``scheduled_for`` (the tick)."""

    scheduled_for: float
    job: NewJob


@dataclass(frozen=True, slots=True)
class ScheduleFiring:
    """Store a schedule's tick jobs and move it on, atomically.

    ``advance = (expected, next)``: applies only while the schedule's ``next_run_at``
    is still ``expected`` and sets it to ``next`` (the compare-and-set that makes each
    tick one job however many workers race); ``None`` stores the jobs unconditionally
    (run now) and leaves ``next_run_at`` alone. Either way ``last_run_at``/``last_job_id``
    follow the last job, if any.
    """

    name: str
    advance: tuple[float, float] | None
    jobs: tuple[ScheduledJob, ...]


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """A failure alert: POST to ``url`` when ``threshold`` jobs entered ``failed`` within ``window`` s."""

    name: str
    url: str
    threshold: int
    window: float
    queue: str | None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A stored alert and when it last fired (POSIX seconds, None: never)."""

    spec: AlertSpec
    last_fired_at: float | None


@dataclass(frozen=True, slots=True)
class FailureCount:
    """Jobs that entered ``failed`` since a time: how many, and the newest ids (up to a limit)."""

    count: int
    job_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AlertFiring:
    """Store an alert's notification job and stamp ``fired_at``, atomically, only if the
    alert has not fired after ``quiet_since`` (so it fires at most once per window)."""

    name: str
    fired_at: float
    quiet_since: float
    job: NewJob


# -- observability: live workers, progress ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """What a live worker says about itself at each heartbeat (the registry's input)."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    #: Ids of the jobs it runs now.
    running: tuple[str, ...]
    started_at: float
    version: str


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A live worker as the registry lists it: its last beat and when the backend saw it."""

    beat: WorkerBeat
    last_seen_at: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/workers`` and ``conveyor workers --json``."""
        b = self.beat
        return {
            "id": b.id,
            "host": b.host,
            "pid": b.pid,
            "queues": list(b.queues),
            "concurrency": b.concurrency,
            "running": list(b.running),
            "started_at": _iso(from_ts(b.started_at)),
            "last_seen_at": _iso(from_ts(self.last_seen_at)),
            "version": b.version,
        }


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """A running job's latest progress, written only while ``lease_token`` still holds it."""

    job_id: str
    lease_token: str
    fraction: float | None
    message: str | None


@dataclass(frozen=True, slots=True)
class QueueGauges:
    """What ``/metrics`` exports for one queue: jobs by state, and its oldest due pending job's age."""

    counts: dict[str, int]
    #: Seconds since the oldest due ``pending`` job of the queue fell due (None: none waits).
    oldest_pending_age_s: float | None


@dataclass(frozen=True, slots=True)
class Gauges:
    """Every queue's gauges, read cheaply enough for a scrape every few seconds.

    ``estimated`` names the states whose counts are estimates rather than exact
    (PostgreSQL's finished states on a large table; see docs/observability.md).
    """

    queues: dict[str, QueueGauges]
    estimated: frozenset[str] = frozenset()


@runtime_checkable
class Backend(Protocol):
    """The storage contract. Implementations are safe to call from several threads."""

    url: str

    # -- life cycle -------------------------------------------------------
    def migrate(self) -> None:
        """Create or upgrade the schema; idempotent and safe from several processes."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def now(self) -> float:
        """The backend's clock, POSIX seconds."""
        ...

    # -- producers ---------------------------------------------------------
    def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """Store jobs in one round trip, honouring idempotency keys; results in input order.

        ``connection``: the caller's own open connection of this engine's driver; the
        jobs are written inside its current transaction (they exist only if it commits).
        A backend that cannot do this raises ConfigurationError naming the alternative.
        """
        ...

    # -- workers -----------------------------------------------------------
    def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        """Atomically lease up to ``limit`` due jobs: priority desc, run_at, then FIFO."""
        ...

    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Block until a job may be claimable in ``queues`` or ``timeout`` passes."""
        ...

    def extend_leases(self, leases: Sequence[Lease], lease_seconds: float) -> LeaseRenewal:
        """Renew the leases still held; report the lost ones and cancel requests."""
        ...

    def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes (fenced by lease token) and record attempts; True where applied."""
        ...

    def reap_expired(self, limit: int = 500) -> ReapResult:
        """Return jobs with lapsed leases to the queue, or fail them when attempts are spent."""
        ...

    # -- flow control ------------------------------------------------------
    def queue_update(self, update: QueueUpdate) -> QueueSettings:
        """Apply a checked change to one queue's settings atomically; the settings after it."""
        ...

    def queue_usage(self, names: Sequence[str] | None = None) -> list[QueueUsage]:
        """Managed queues (all, or those of ``names`` that are) against their limits, by name."""
        ...

    # -- results -----------------------------------------------------------
    def watch_finishes(self, job_ids: Sequence[str], wake: Callable[[], None]) -> FinishWatch:
        """Call ``wake`` (from any thread) when one of ``job_ids`` may have reached a final state.

        Never blocks: an engine whose listener is not connected yet returns a watch
        that is not ``live`` and wakes it once listening. See the kit's finish
        wake-up rule.
        """
        ...

    # -- admin -------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempt records, or None."""
        ...

    def list_jobs(self, query: JobQuery) -> Page:
        """Jobs matching ``query``, newest first (created_at desc, id desc)."""
        ...

    def stats(self) -> Stats:
        """Counts by state and queue."""
        ...

    def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending with a fresh attempt budget.

        Attempt numbers keep counting (``prior_attempts`` becomes ``attempt``); the
        attempt records keep the arguments each attempt ran with.
        """
        ...

    def resubmit_many(self, query: JobQuery, payload: str | None = None) -> list[str]:
        """Resubmit every failed/cancelled job matching ``query`` (limit/offset ignored); their ids."""
        ...

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a waiting job at once, or flag a running one for cancellation."""
        ...

    def delete(self, job_id: str) -> None:
        """Delete a job that is not processing, with its attempt records."""
        ...

    def delete_many(self, query: JobQuery) -> BulkDeletion:
        """Delete every job matching ``query`` but the processing ones (counted as skipped).

        limit/offset are ignored; attempt records and idempotency keys go with the jobs.
        """
        ...

    def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Delete up to ``batch_size`` finished jobs in ``states`` finished before ``before``."""
        ...

    def audits(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[AttemptRecord]:
        """Attempt records, newest first, optionally for one job."""
        ...

    # -- the operators' action trail ---------------------------------------------
    def record_actions(self, actions: Sequence[NewAction]) -> None:
        """Store actions at the backend's now, each linked to every job id it names."""
        ...

    def list_actions(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[ActionRecord]:
        """Recorded actions, newest first, optionally only those naming ``job_id``."""
        ...

    # -- schedules ---------------------------------------------------------------------
    def schedule_save(self, specs: Sequence[ScheduleSpec]) -> None:
        """Create or update schedules by name. An unchanged timing (cron, every, tz) keeps the
        stored ``next_run_at``; a new schedule or a changed timing takes the spec's. ``paused``
        and the last run are kept."""
        ...

    def schedule_list(self) -> list[ScheduleRecord]:
        """Every stored schedule, by name."""
        ...

    def schedule_delete(self, names: Sequence[str]) -> int:
        """Delete schedules by name; returns how many existed."""
        ...

    def schedule_pause(self, names: Sequence[str], paused: bool, next_run_at: float | None = None) -> int:
        """Pause or resume schedules (resuming may set ``next_run_at``); returns how many exist."""
        ...

    def schedule_fire(self, firings: Sequence[ScheduleFiring]) -> list[bool]:
        """Apply each firing atomically (see ScheduleFiring); True where it applied."""
        ...

    # -- failure alerts ------------------------------------------------------------------
    def alert_save(self, specs: Sequence[AlertSpec]) -> None:
        """Create or update alerts by name (``last_fired_at`` is kept)."""
        ...

    def alert_list(self) -> list[AlertRecord]:
        """Every stored alert, by name."""
        ...

    def alert_delete(self, names: Sequence[str]) -> int:
        """Delete alerts by name; returns how many existed."""
        ...

    def failures_since(self, since: float, queue: str | None = None, limit: int = 20) -> FailureCount:
        """Jobs now ``failed`` whose ``finished_at`` is at or after ``since`` (one queue or all)."""
        ...

    def alert_fire(self, firings: Sequence[AlertFiring]) -> list[bool]:
        """Apply each firing atomically (see AlertFiring); True where it applied."""
        ...

    # -- observability -----------------------------------------------------------
    def workers_beat(self, beats: Sequence[WorkerBeat], ttl_seconds: float) -> None:
        """Register or renew live workers; each is listed until ``ttl_seconds`` after this call."""
        ...

    def workers_remove(self, worker_ids: Sequence[str]) -> None:
        """Take workers off the list at once (a clean stop)."""
        ...

    def workers_live(self) -> list[WorkerRecord]:
        """The workers whose last beat has not expired, oldest first (and forget expired ones)."""
        ...

    def jobs_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        """Store each running job's progress with the backend's now, fenced by its lease token."""
        ...

    def queue_gauges(self) -> Gauges:
        """Per queue: jobs by state and the oldest due pending job's age, without a pass over every row."""
        ...

    def throughput(self, minutes: int = 60, queue: str | None = None) -> Throughput:
        """Jobs completed and failed in each of the last ``minutes`` minutes (1 to 1440), one queue or all.

        See :mod:`conveyor.backends.throughput` for what counts; bad ``minutes`` is InvalidWindow.
        """
        ...


@runtime_checkable
class ClaimsOnWake(Protocol):
    """A backend whose idle wait can end in a claim within the same round trip (Redis).

    A worker with nothing to do calls ``wait_and_claim`` instead of ``wait_for_jobs``
    followed by ``claim``: the woken worker then holds its jobs without a second round trip.
    """

    def wait_and_claim(self, request: ClaimRequest, timeout: float) -> list[ClaimedJob]:
        """Wait like ``wait_for_jobs(request.queues, timeout)``, then claim ``request``; the leased jobs."""
        ...


class FinishWatch:
    """Wake-ups for some jobs reaching a final state, as ``Backend.watch_finishes`` gives them.

    ``wake`` is called, from any thread, when a watched job may have finished (or when
    the engine cannot tell: its listener reconnected); the waiter then reads the job
    again. ``live`` is True while the engine delivers a wake-up for every finish; while
    it is False (an engine without wake-ups, or a listener reconnecting) the waiter
    polls. Use it as a context manager, or call :meth:`close`.
    """

    __slots__ = ("_forget", "_live", "job_ids", "wake")

    def __init__(
        self,
        job_ids: Sequence[str],
        wake: Callable[[], None],
        *,
        live: Callable[[], bool] | None = None,
        forget: Callable[[FinishWatch], None] | None = None,
    ) -> None:
        self.job_ids = tuple(dict.fromkeys(job_ids))
        self.wake = wake
        self._live = live
        self._forget = forget

    @property
    def live(self) -> bool:
        """True while every finish of a watched job reaches ``wake``."""
        return self._live is not None and self._live()

    @property
    def has_wakeups(self) -> bool:
        """False when the engine never wakes a watch (SQLite): waiters poll, always."""
        return self._live is not None

    def close(self) -> None:
        """Stop watching (idempotent)."""
        forget, self._forget, self._live = self._forget, None, None
        if forget is not None:
            forget(self)

    def __enter__(self) -> FinishWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decode_payload(payload: str) -> tuple[list[Any], dict[str, Any]]:
    """The args and kwargs of a stored payload."""
    data = json.loads(payload)
    return data.get("args", []), data.get("kwargs", {})


def from_ts(value: float | None) -> datetime | None:
    """POSIX seconds to an aware UTC datetime (None stays None)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    if not traceparent or len(traceparent) < 35:
        return None
    return traceparent[3:35]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
