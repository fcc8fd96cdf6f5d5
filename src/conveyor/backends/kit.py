"""The engine-neutral kit every backend shares: rules written once, row mapping, errors.

Each engine applies the same rules in its own language (SQL, Lua, Python). The
rules that matter for correctness are written here, in words and, where Python
applies them, in code; the SQL and Lua that implement them cite this module.

The reap verdict (a lease lapsed: the worker died or hung):

1. cancellation was requested  -> ``cancelled`` (finished now, audit outcome ``cancelled``);
2. else the attempts are spent -> ``failed`` with :data:`~conveyor.backends.base.WORKER_LOST`
   (this submission's, see the resubmit history rule; finished now, audit outcome ``lost``):
   a poison pill never loops;
3. else                        -> ``pending``, due now, the attempt counted (audit outcome ``lost``).

The resubmit history rule: a resubmit keeps the attempt number and sets
``prior_attempts`` to it, so numbers keep counting (a job of 3 attempts that failed
and was resubmitted runs attempts 4, 5, 6 at most) while the budget restarts: a
submission's attempts are spent when ``attempt - prior_attempts >= max_attempts``
(the reap verdict and the worker's retry decision both count this way). Every
attempt record stores the payload the job held when the attempt was recorded (a
payload never changes while a job is processing), so edited arguments never
rewrite what an earlier attempt ran with.

The idempotency key rule (enqueue with a ``key``): the job that answers for a
key is the newest waiting (``pending``/``retry``) job with it, else the newest
``processing`` one or one ``completed`` within the key retention window;
``failed`` and ``cancelled`` jobs release their key. ``keep`` returns that job;
``replace`` rewrites a waiting holder's payload, priority, due time, attempt
budget and callback, and stores a new job when the holder already runs.

The error filter (``JobQuery.error``): a job matches when its last error contains the
text as a plain, case-sensitive substring (no wildcards: ``%``, ``_`` and pattern
characters are just characters); a job without an error never matches.

Bulk deletion (``delete_many``): every job matching the filters is deleted with its
attempt records and unused idempotency keys, except ``processing`` ones, which are
counted as skipped. The action trail (``record_actions``) is never pruned with jobs:
the record of a deletion outlives the job it names.

The claim order: higher ``priority`` first, then earlier ``run_at``, then the
smaller id (ids sort by creation time, so this is FIFO).

The finish wake-up rule (``watch_finishes``): whenever a job reaches a final state
(``completed``, ``failed``, ``cancelled``: by ``finish_many``, ``cancel`` or the
reaper), the engine tells the processes watching it, once per write and not once
per job. PostgreSQL sends one ``pg_notify`` on the schema's finish channel with
the ids, comma-separated (past NOTIFY's 8000-byte payload limit, about 240 ids,
it says ``*``, "something finished", which wakes every watch); ``finish_many``
skips it while no finish listener holds the schema's advisory lock. Redis
PUBLISHes the ids once per script call on ``{prefix}:finished``; memory calls the
store's :class:`FinishHub` directly; SQLite sends nothing (waiters poll). A
listener that (re)connects wakes every watch, since what it missed is unknown.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal, Protocol, get_args

from ..errors import InvalidState, JobNotFound
from ..states import ALL_STATES, State
from .base import (
    WORKER_LOST,
    ActionRecord,
    AlertRecord,
    AlertSpec,
    AttemptRecord,
    FinishWatch,
    Gauges,
    JobQuery,
    JobRecord,
    NewJob,
    Outcome,
    OutcomeKind,
    ProgressUpdate,
    QueueGauges,
    ScheduleRecord,
    ScheduleSpec,
    Stats,
    WorkerBeat,
    WorkerRecord,
    decode_payload,
    from_ts,
    trace_id_of,
)

#: Every outcome kind of ``finish_many``, in the protocol's order.
OUTCOME_KINDS: Final[tuple[OutcomeKind, ...]] = get_args(OutcomeKind)

#: The columns of a job row, in the order engines that read rows by position return them.
JOB_FIELDS: Final = (
    "id",
    "task",
    "queue",
    "state",
    "payload",
    "attempt",
    "max_attempts",
    "priority",
    "run_at",
    "created_at",
    "started_at",
    "finished_at",
    "result",
    "error",
    "traceback",
    "key",
    "worker",
    "lease_expires_at",
    "cancel_requested",
    "on_complete",
    "prior_attempts",
    "group_key",
    "schedule",
    "scheduled_for",
    "progress",
    "trace_context",
)

#: The columns of an attempt row, in order.
ATTEMPT_FIELDS: Final = (
    "job_id",
    "attempt",
    "worker",
    "started_at",
    "finished_at",
    "outcome",
    "error",
    "traceback",
    "status_code",
    "response_excerpt",
    "payload",
    "trace_id",
)

#: The columns of an action row, in order (``detail`` is JSON text or None).
ACTION_FIELDS: Final = ("id", "at", "actor", "role", "action", "job_id", "count", "detail")

#: The error recorded on a waiting job cancelled before any worker took it.
CANCELLED_BEFORE_RUN: Final = "cancelled before it ran"

ReapVerdict = Literal["cancelled", "failed", "pending"]


class Fields(Protocol):
    """A row whose columns are read by name (a dict, a ``sqlite3.Row``, a stored job)."""

    def __getitem__(self, name: str, /) -> Any: ...


# -- rules ---------------------------------------------------------------------------
def reap_verdict(
    cancel_requested: bool, attempt: int, max_attempts: int, prior_attempts: int = 0
) -> ReapVerdict:
    """Where a job whose lease lapsed goes (the reap verdict of the module docstring)."""
    if cancel_requested:
        return "cancelled"
    if attempts_spent(attempt, max_attempts, prior_attempts):
        return "failed"
    return "pending"


def attempts_spent(attempt: int, max_attempts: int, prior_attempts: int) -> bool:
    """Whether the current submission has run its ``max_attempts`` (the resubmit history rule)."""
    return attempt - prior_attempts >= max_attempts


def reap_audit_outcome(verdict: ReapVerdict) -> str:
    """The outcome the audit record of a reaped attempt carries."""
    return "cancelled" if verdict == "cancelled" else "lost"


class Claimable(Protocol):
    """What the claim order looks at: a claimed job, or a waiting one in an engine's store."""

    @property
    def id(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def run_at(self) -> float: ...


def claim_order(job: Claimable) -> tuple[int, float, str]:
    """Sort key of the claim order: priority desc, run_at, then id (FIFO)."""
    return (-job.priority, job.run_at, job.id)


def due_time(job: NewJob, now: float) -> float:
    """When a new job may first run: its ``run_at``, else ``delay`` seconds after ``now``."""
    return job.run_at if job.run_at is not None else now + job.delay


def query_params(query: JobQuery) -> dict[str, Any]:
    """A JobQuery's filters and page as named query parameters (None: no filter)."""
    return {
        "status": query.status,
        "queue": query.queue,
        "task": query.task,
        "created_after": query.created_after,
        "created_before": query.created_before,
        "error": query.error,
        "group": query.group,
        "limit": query.limit,
        "offset": query.offset,
    }


def stats_from_counts(groups: Iterable[tuple[str, str, int]], oldest_pending_age: float | None) -> Stats:
    """Stats from ``(queue, state, count)`` groups: every state present, overall and per queue."""
    counts: dict[str, int] = dict.fromkeys(ALL_STATES, 0)
    queues: dict[str, dict[str, int]] = {}
    for queue, state, n in groups:
        counts[state] += int(n)
        queues.setdefault(queue, dict.fromkeys(ALL_STATES, 0))[state] += int(n)
    age = None if oldest_pending_age is None else max(0.0, float(oldest_pending_age))
    return Stats(counts, dict(sorted(queues.items())), age)


# -- row mapping ---------------------------------------------------------------------
def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def job_record(row: Fields, attempts: Iterable[AttemptRecord] = ()) -> JobRecord:
    """A JobRecord from a row with the :data:`JOB_FIELDS` (times as POSIX seconds or None).

    ``payload`` and ``result`` are the stored JSON text; ``cancel_requested`` any truthy
    value (engines without booleans map their own spelling before calling).
    """
    args, kwargs = decode_payload(row["payload"])
    state: State = row["state"]
    result = row["result"]
    return JobRecord(
        id=row["id"],
        task=row["task"],
        queue=row["queue"],
        state=state,
        args=args,
        kwargs=kwargs,
        attempt=int(row["attempt"]),
        max_attempts=int(row["max_attempts"]),
        priority=int(row["priority"]),
        run_at=from_ts(float(row["run_at"])),  # type: ignore[arg-type]
        created_at=from_ts(float(row["created_at"])),  # type: ignore[arg-type]
        started_at=from_ts(_seconds(row["started_at"])),
        finished_at=from_ts(_seconds(row["finished_at"])),
        result=None if result is None else json.loads(result),
        error=row["error"],
        traceback=row["traceback"],
        key=row["key"],
        worker=row["worker"],
        lease_expires_at=from_ts(_seconds(row["lease_expires_at"])),
        cancel_requested=bool(row["cancel_requested"]),
        on_complete=row["on_complete"],
        group=row["group_key"],
        attempts=list(attempts),
        prior_attempts=int(row["prior_attempts"] or 0),  # a Redis hash omits it until a resubmit
        schedule=row["schedule"],
        scheduled_for=from_ts(_seconds(row["scheduled_for"])),
        progress=progress_of(row["progress"]),
        trace_id=trace_id_of(row["trace_context"]),
    )


def attempt_record(row: Fields) -> AttemptRecord:
    """An AttemptRecord from a row with the :data:`ATTEMPT_FIELDS` (times as POSIX seconds)."""
    status_code = row["status_code"]
    payload = row["payload"]
    args, kwargs = (None, None) if payload is None else decode_payload(payload)
    return AttemptRecord(
        job_id=row["job_id"],
        attempt=int(row["attempt"]),
        worker=row["worker"],
        started_at=from_ts(_seconds(row["started_at"])),
        finished_at=from_ts(_seconds(row["finished_at"])),
        outcome=row["outcome"],
        error=row["error"],
        traceback=row["traceback"],
        status_code=None if status_code is None else int(status_code),
        response_excerpt=row["response_excerpt"],
        args=args,
        kwargs=kwargs,
        trace_id=row["trace_id"],
    )


def outcome_attempt(outcome: Outcome, payload: str | None = None) -> dict[str, Any]:
    """The audit row an applied outcome records, by :data:`ATTEMPT_FIELDS`.

    ``payload``: the job's payload, for engines that store the row as given; SQL
    engines copy it from the job's row in the same statement instead.
    """
    return {
        "job_id": outcome.job_id,
        "attempt": outcome.attempt,
        "worker": outcome.worker,
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
        "outcome": outcome.kind,
        "error": outcome.error,
        "traceback": outcome.traceback,
        "status_code": outcome.status_code,
        "response_excerpt": outcome.response_excerpt,
        "payload": payload,
        "trace_id": outcome.trace_id,
    }


def reaped_attempt(
    job_id: str,
    attempt: int,
    worker: str | None,
    started_at: float | None,
    now: float,
    verdict: ReapVerdict,
    payload: str | None = None,
) -> dict[str, Any]:
    """The audit row of an attempt whose lease lapsed, by :data:`ATTEMPT_FIELDS`."""
    return {
        "job_id": job_id,
        "attempt": attempt,
        "worker": worker,
        "started_at": started_at,
        "finished_at": now,
        "outcome": reap_audit_outcome(verdict),
        "error": WORKER_LOST,
        "traceback": None,
        "status_code": None,
        "response_excerpt": None,
        "payload": payload,
        "trace_id": None,
    }


def action_record(row: Fields) -> ActionRecord:
    """An ActionRecord from a row with the :data:`ACTION_FIELDS` (``at`` as POSIX seconds)."""
    detail = row["detail"]
    return ActionRecord(
        id=int(row["id"]),
        at=from_ts(float(row["at"])),  # type: ignore[arg-type]
        actor=row["actor"],
        role=row["role"] or None,
        action=row["action"],
        job_id=row["job_id"] or None,
        count=int(row["count"]),
        detail=None if not detail else json.loads(detail),
    )


def action_job_id(job_ids: tuple[str, ...]) -> str | None:
    """The ``job_id`` an action row carries: its job when it names exactly one, else None."""
    return job_ids[0] if len(job_ids) == 1 else None


#: The columns of a stored schedule, in the order engines that read rows by position return them.
SCHEDULE_FIELDS: Final = (
    "name",
    "task",
    "cron",
    "every",
    "tz",
    "payload",
    "queue",
    "missed",
    "paused",
    "next_run_at",
    "last_run_at",
    "last_job_id",
)

#: The columns of a stored alert, in order.
ALERT_FIELDS: Final = ("name", "url", "threshold", "window", "queue", "last_fired_at")


def schedule_record(row: Fields) -> ScheduleRecord:
    """A ScheduleRecord from a row with the :data:`SCHEDULE_FIELDS` (times as POSIX seconds)."""
    spec = ScheduleSpec(
        name=row["name"],
        task=row["task"],
        cron=row["cron"] or None,
        every=_seconds(row["every"]),
        tz=row["tz"],
        payload=row["payload"],
        queue=row["queue"] or None,
        missed="skip" if row["missed"] == "skip" else "latest",
        next_run_at=float(row["next_run_at"]),
    )
    return ScheduleRecord(
        spec=spec,
        paused=bool(int(row["paused"] or 0)),
        next_run_at=float(row["next_run_at"]),
        last_run_at=_seconds(row["last_run_at"]),
        last_job_id=row["last_job_id"] or None,
    )


def alert_record(row: Fields) -> AlertRecord:
    """An AlertRecord from a row with the :data:`ALERT_FIELDS`."""
    spec = AlertSpec(
        name=row["name"],
        url=row["url"],
        threshold=int(row["threshold"]),
        window=float(row["window"]),
        queue=row["queue"] or None,
    )
    return AlertRecord(spec, _seconds(row["last_fired_at"]))


def spec_params(spec: ScheduleSpec | AlertSpec) -> dict[str, Any]:
    """A schedule's or alert's fields as the named parameters of its SQL ``*_save`` statement."""
    return {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}


def by_position(names: tuple[str, ...], row: Iterable[Any]) -> dict[str, Any]:
    """A positional row as a mapping of ``names`` (engines that return tuples)."""
    return dict(zip(names, row, strict=True))


# -- observability -------------------------------------------------------------------
#: How long a worker stays listed after its last beat, in heartbeats: three missed beats.
MISSED_BEATS_ALLOWED: Final = 3


def gauges_from(
    groups: Iterable[tuple[str, str, int]],
    oldest_ages: Iterable[tuple[str, float | None]],
    estimated: frozenset[str] = frozenset(),
) -> Gauges:
    """Gauges from ``(queue, state, count)`` groups and ``(queue, oldest due pending age)`` pairs."""
    counts: dict[str, dict[str, int]] = {}
    for queue, state, n in groups:
        per_state = counts.setdefault(queue, dict.fromkeys(ALL_STATES, 0))
        per_state[state] += int(n)
    ages = {queue: None if age is None else max(0.0, float(age)) for queue, age in oldest_ages}
    queues = {
        queue: QueueGauges(counts.get(queue, dict.fromkeys(ALL_STATES, 0)), ages.get(queue))
        for queue in sorted(set(counts) | set(ages))
    }
    return Gauges(queues, estimated)


def progress_text(update: ProgressUpdate, now: float) -> str:
    """The stored JSON of a progress update, stamped with the backend's ``now``."""
    return json.dumps(
        {"fraction": update.fraction, "message": update.message, "updated_at": now}, separators=(",", ":")
    )


def progress_of(stored: str | None) -> dict[str, Any] | None:
    """The job JSON's ``progress`` from its stored text (``updated_at`` as ISO-8601)."""
    if not stored:
        return None
    data = json.loads(stored)
    moment = from_ts(data.get("updated_at"))
    return {
        "fraction": data.get("fraction"),
        "message": data.get("message"),
        "updated_at": None if moment is None else moment.isoformat(),
    }


def worker_info(beat: WorkerBeat) -> str:
    """A worker's beat as the JSON text the registry stores."""
    return json.dumps(
        {
            "id": beat.id,
            "host": beat.host,
            "pid": beat.pid,
            "queues": list(beat.queues),
            "concurrency": beat.concurrency,
            "running": list(beat.running),
            "started_at": beat.started_at,
            "version": beat.version,
        },
        separators=(",", ":"),
    )


def worker_record(info: str, last_seen_at: float) -> WorkerRecord:
    """A registry entry from its stored JSON and the backend's time of the last beat."""
    data = json.loads(info)
    beat = WorkerBeat(
        id=data["id"],
        host=data["host"],
        pid=int(data["pid"]),
        queues=tuple(data["queues"]),
        concurrency=int(data["concurrency"]),
        running=tuple(data["running"]),
        started_at=float(data["started_at"]),
        version=data["version"],
    )
    return WorkerRecord(beat, float(last_seen_at))


# -- errors --------------------------------------------------------------------------
def job_not_found(job_id: str) -> JobNotFound:
    """No job has this id."""
    return JobNotFound(f"no job with id {job_id!r}")


def job_vanished(job_id: str, doing: str) -> JobNotFound:
    """The job was deleted between an operation and the read of its result."""
    return JobNotFound(f"job {job_id!r} was deleted while being {doing}")


def cannot_resubmit(job_id: str, state: str) -> InvalidState:
    """Resubmit of a job that is neither failed nor cancelled."""
    return InvalidState(f"job {job_id} is {state}; only failed or cancelled jobs can be resubmitted")


def cannot_cancel(job_id: str, state: str) -> InvalidState:
    """Cancel of a job that already reached a final state."""
    return InvalidState(f"job {job_id} is already {state}; nothing to cancel")


def cannot_delete(job_id: str) -> InvalidState:
    """Delete of a job a worker is running."""
    return InvalidState(f"job {job_id} is processing; cancel it before deleting it")


def unknown_outcome_kind(kind: str) -> ValueError:
    """An outcome whose kind is none of :data:`OUTCOME_KINDS`."""
    return ValueError(f"unknown outcome kind {kind!r}: expected one of {', '.join(OUTCOME_KINDS)}")


#: Kinds of outcome that leave a job in a final state (what ``watch_finishes`` reports).
FINAL_OUTCOMES: Final = frozenset({"completed", "failed", "cancelled"})

log = logging.getLogger("conveyor.backends")


class FinishHub:
    """Routes an engine's "these jobs finished" notices to the watches of those ids.

    One per backend (per store for memory). ``live`` says whether the engine's
    notices currently arrive (a listener connected); ``on_watch`` runs when a watch
    is added (an engine starts its listener there, without blocking).
    """

    def __init__(
        self, live: Callable[[], bool] = lambda: True, on_watch: Callable[[], None] | None = None
    ) -> None:
        self.live = live
        self._on_watch = on_watch
        self._lock = threading.Lock()
        self._by_id: dict[str, list[FinishWatch]] = {}

    def watch(self, job_ids: Sequence[str], wake: Callable[[], None]) -> FinishWatch:
        """A watch on ``job_ids`` calling ``wake`` when one of them may have finished."""
        watch = FinishWatch(job_ids, wake, live=self.live, forget=self.forget)
        with self._lock:
            for job_id in watch.job_ids:
                self._by_id.setdefault(job_id, []).append(watch)
        if self._on_watch is not None:
            self._on_watch()
        return watch

    def forget(self, watch: FinishWatch) -> None:
        """Remove ``watch`` (FinishWatch.close calls this)."""
        with self._lock:
            for job_id in watch.job_ids:
                watches = self._by_id.get(job_id)
                if watches is not None and watch in watches:
                    watches.remove(watch)
                    if not watches:
                        del self._by_id[job_id]

    @property
    def watching(self) -> bool:
        """True while any job is watched."""
        return bool(self._by_id)

    def finished(self, job_ids: Iterable[str]) -> None:
        """Wake the watches of these ids (cheap when nobody watches: one dict probe per id)."""
        if not self._by_id:
            return
        with self._lock:
            woken = {id(w): w for job_id in job_ids for w in self._by_id.get(job_id, ())}
        self._wake(woken.values())

    def wake_all(self) -> None:
        """Wake every watch: the engine cannot tell what finished (a listener reconnected)."""
        with self._lock:
            woken = {id(w): w for watches in self._by_id.values() for w in watches}
        self._wake(woken.values())

    @staticmethod
    def _wake(watches: Iterable[FinishWatch]) -> None:
        for watch in watches:
            try:
                watch.wake()
            except Exception:
                log.debug("a finish wake-up failed", exc_info=True)


def final_ids(outcomes: Sequence[Outcome], applied: Sequence[bool]) -> list[str]:
    """The ids of applied outcomes that left their job in a final state."""
    return [o.job_id for o, ok in zip(outcomes, applied, strict=True) if ok and o.kind in FINAL_OUTCOMES]
