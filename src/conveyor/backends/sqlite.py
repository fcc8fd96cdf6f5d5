"""The embedded default: one SQLite file in WAL mode, shared by the processes of one machine.

Every write runs in a ``BEGIN IMMEDIATE`` transaction, so a claim is atomic
across processes; leases and due times use the machine's clock, the one clock
every process on it shares. Each thread gets its own connection.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import BadURL, ConfigurationError, SchemaMismatch
from ..states import State
from . import kit, sqlfile, sqlite_flow
from .base import (
    WORKER_LOST,
    ActionRecord,
    AttemptRecord,
    BulkDeletion,
    ClaimedJob,
    ClaimRequest,
    EnqueueResult,
    FinishWatch,
    Gauges,
    JobQuery,
    JobRecord,
    Lease,
    LeaseRenewal,
    NewAction,
    NewJob,
    Outcome,
    Page,
    ProgressUpdate,
    ReapResult,
    Stats,
    WorkerBeat,
    WorkerRecord,
)
from .flow import QueueSettings, QueueUpdate, QueueUsage
from .sqlite_maintenance import SQLiteMaintenance
from .sqlite_observe import SQLiteObservability

SQL = sqlfile.load("sqlite.sql")
#: Migration blocks by version (``migration_NNN`` in sqlite.sql); a file records each one applied.
MIGRATIONS = {
    int(name.removeprefix("migration_")): block
    for name, block in SQL.items()
    if name.startswith("migration_")
}
SCHEMA_VERSION = max(MIGRATIONS)

_FINISH = {
    "completed": SQL["finish_completed"],
    "retry": SQL["finish_retry"],
    "failed": SQL["finish_failed"],
    "cancelled": SQL["finish_cancelled"],
    "released": SQL["finish_released"],
}


def parse_sqlite_url(url: str) -> tuple[Path, dict[str, str]]:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` to a path and options."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise BadURL(f"not a SQLite URL: {url!r} (expected sqlite:///path/to/file.db)")
    if parts.netloc:
        raise BadURL(f"SQLite URL {url!r} has a host; write sqlite:///relative.db or sqlite:////abs.db")
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw or raw == ":memory:":
        raise BadURL(
            f"SQLite URL {url!r} names no file; workers need a shared file, e.g. sqlite:///conveyor.db"
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(options) - {"synchronous", "poll"}
    if unknown:
        raise BadURL(
            f"unknown SQLite URL option(s) {sorted(unknown)} in {url!r}: known are poll, synchronous"
        )
    if options.get("synchronous", "NORMAL").upper() not in ("NORMAL", "FULL"):
        raise BadURL(f"synchronous must be NORMAL or FULL in {url!r}")
    return Path(raw), options


class SQLiteBackend(SQLiteMaintenance, SQLiteObservability):
    """The Backend protocol on a SQLite file (see module docstring)."""

    def __init__(self, url: str, *, key_retention: float = 86400.0) -> None:
        self.url = url
        self.path, options = parse_sqlite_url(url)
        self.synchronous = options.get("synchronous", "NORMAL").upper()
        try:
            self.poll_interval = float(options.get("poll", "0.01"))
        except ValueError:
            raise BadURL(f"poll must be seconds, got {options['poll']!r} in {url!r}") from None
        self.key_retention = key_retention
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._checked = False

    # -- connections --------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.path.parent and not self.path.parent.exists():
                raise BadURL(f"directory {str(self.path.parent)!r} of {self.url!r} does not exist")
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives any process crash (SIGKILL included);
            # FULL also survives power loss, at an fsync per commit.
            conn.execute(f"PRAGMA synchronous={'FULL' if self.synchronous == 'FULL' else 'NORMAL'}")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
            if not self._checked:
                self._check_schema(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: takes the write lock up front, so no upgrade deadlock."""
        conn = self._conn()
        # Threads of one process queue on a Python lock: SQLite's busy handler would
        # make them sleep in milliseconds-long steps instead.
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='conveyor_schema'"
        ).fetchone()
        version = conn.execute(SQL["schema_version"]).fetchone()[0] if exists else None
        if version is None:
            self._migrate(conn)
        elif version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"{self.path} has schema version {version}, newer than this Conveyor knows "
                f"({SCHEMA_VERSION}); upgrade conveyor"
            )
        elif version < SCHEMA_VERSION:
            self._migrate(conn)
        self._checked = True

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(SQL["schema_version_table"])
            current = conn.execute(SQL["schema_version"]).fetchone()[0] or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(SQL["record_version"], {"version": version})
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def migrate(self) -> None:
        """Create or upgrade the schema (the embedded default also does this on first use)."""
        self._conn()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            with suppress(sqlite3.ProgrammingError):
                conn.close()
        self._local = threading.local()

    def now(self) -> float:
        """The machine's clock: on one machine every process shares it."""
        return time.time()

    # -- producers -----------------------------------------------------------
    def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """Insert in one transaction; keyed jobs look up their key first.

        With ``connection`` (a ``sqlite3.Connection`` to the same file, inside the
        caller's open transaction) the rows are written there and commit with it.
        """
        if connection is None:
            with self._write() as conn:
                return self._insert(conn, jobs)
        if not isinstance(connection, sqlite3.Connection):
            raise ConfigurationError(
                f"connection= takes a sqlite3.Connection on this backend, got {type(connection).__name__}"
            )
        self._conn()  # make sure the schema exists
        if not connection.in_transaction:
            raise ConfigurationError("connection= needs an open transaction (BEGIN first)")
        return self._insert(connection, jobs)

    def _insert(self, conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        now = time.time()
        if all(j.key is None and j.group is None for j in jobs):
            conn.executemany(
                SQL["insert_plain_jobs"],
                [
                    (j.id, j.task, j.queue, j.payload, j.priority, kit.due_time(j, now),
                     now, j.max_attempts, j.on_complete, j.trace_context)
                    for j in jobs
                ],
            )  # fmt: skip
            return [EnqueueResult(j.id, "pending", True) for j in jobs]
        return [self._enqueue_one(conn, job, now) for job in jobs]

    def _row(self, job: NewJob, now: float) -> dict[str, Any]:
        return {
            "id": job.id,
            "task": job.task,
            "queue": job.queue,
            "payload": job.payload,
            "priority": job.priority,
            "run_at": kit.due_time(job, now),
            "now": now,
            "max_attempts": job.max_attempts,
            "key": job.key,
            "on_complete": job.on_complete,
            "group_key": job.group,
            "fair_rank": 0,
            "trace_context": job.trace_context,
        }

    def _enqueue_one(self, conn: sqlite3.Connection, job: NewJob, now: float) -> EnqueueResult:
        row = self._row(job, now)
        if job.key is not None:
            found = conn.execute(
                SQL["find_by_key"], {"key": job.key, "completed_since": now - self.key_retention}
            ).fetchone()
            if found is not None:
                if job.key_mode == "keep":
                    return EnqueueResult(found["id"], found["state"], False)
                if found["state"] in ("pending", "retry"):
                    conn.execute(SQL["replace_waiting"], {**row, "id": found["id"]})
                    return EnqueueResult(found["id"], found["state"], False)
                # replace mode with a running/finished holder: the newest arguments run next.
        if job.group is not None:
            row["fair_rank"] = sqlite_flow.rank(conn, job.queue, job.group)
        conn.execute(SQL["insert_job"], row)
        return EnqueueResult(job.id, "pending", True)

    # -- workers ---------------------------------------------------------------
    def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs in one IMMEDIATE transaction."""
        if request.limit < 1:
            return []
        # A cheap read first, so idle polling never takes the write lock.
        if not self._any_due(request.queues):
            return []
        token = secrets.token_hex(8)
        with self._write() as conn:
            now = time.time()
            candidates: list[tuple[int, float, str]] = []
            managed = sqlite_flow.managed(conn, request.queues)
            start_limit = request.limit if request.start_limit is None else request.start_limit
            for queue in dict.fromkeys(request.queues):
                settings = managed.get(queue)
                if settings is not None:  # flow control: limits and fair order (backends/flow.py)
                    if start_limit > 0:
                        picked = sqlite_flow.pick(conn, settings, min(request.limit, start_limit), now)
                        start_limit -= len(picked)
                        candidates.extend(picked)
                    continue
                cursor = conn.execute(
                    SQL["claim_candidates"], {"queue": queue, "now": now, "limit": request.limit}
                )
                candidates.extend((-r[1], r[2], r[0]) for r in cursor)
            if not candidates:
                return []
            mixed = len(request.queues) > 1 or bool(managed)
            chosen = [c[2] for c in (sorted(candidates)[: request.limit] if mixed else candidates)]
            params = {
                "token": token,
                "now": now,
                "lease": request.lease_seconds,
                "worker": request.worker_id,
                "ids": json.dumps(chosen),
            }
            rows = conn.execute(SQL["claim"], params).fetchall()
            if managed:
                sqlite_flow.record_claims(conn, managed, rows, now)
        claimed = [
            ClaimedJob(
                id=r["id"],
                task=r["task"],
                queue=r["queue"],
                payload=r["payload"],
                attempt=r["attempt"],
                max_attempts=r["max_attempts"],
                lease_token=token,
                priority=r["priority"],
                key=r["key"],
                on_complete=r["on_complete"],
                created_at=r["created_at"],
                run_at=r["run_at"],
                prior_attempts=r["prior_attempts"],
                group=r["group_key"],
                trace_context=r["trace_context"],
            )
            for r in rows
        ]
        claimed.sort(key=kit.claim_order)
        return claimed

    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Poll cheaply (a read on the claim index) until a job is due or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if self._any_due(queues):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(self.poll_interval, left))

    def _any_due(self, queues: Sequence[str]) -> bool:
        conn = self._conn()
        now = time.time()
        return any(
            conn.execute(SQL["any_due"], {"queue": q, "now": now}).fetchone() is not None for q in queues
        )

    def extend_leases(self, leases: Sequence[Lease], lease_seconds: float) -> LeaseRenewal:
        """Renew each held lease; report lost ones and cancel flags."""
        if not leases:
            return LeaseRenewal(frozenset(), frozenset())
        lost: set[str] = set()
        expires = time.time() + lease_seconds
        with self._write() as conn:
            for lease in leases:
                cur = conn.execute(
                    SQL["extend_lease"],
                    {"expires": expires, "id": lease.job_id, "token": lease.lease_token},
                )
                if cur.rowcount == 0:
                    lost.add(lease.job_id)
            ids = json.dumps([lease.job_id for lease in leases])
            flagged = {r[0] for r in conn.execute(SQL["cancel_flags"], {"ids": ids})}
        return LeaseRenewal(frozenset(lost), frozenset(flagged - lost))

    def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply every outcome and its audit record in one transaction."""
        applied: list[bool] = []
        now = time.time()
        with self._write() as conn:
            for o in outcomes:
                cur = conn.execute(
                    _FINISH[o.kind],
                    {
                        "id": o.job_id,
                        "token": o.lease_token,
                        "now": now,
                        "result": o.result,
                        "error": o.error,
                        "traceback": o.traceback,
                        "delay": o.retry_delay,
                    },
                )
                ok = cur.rowcount == 1
                applied.append(ok)
                if ok and o.started_at is not None:
                    conn.execute(SQL["insert_attempt"], kit.outcome_attempt(o))
                if ok and o.follow_ups:
                    self._insert(conn, o.follow_ups)
        return applied

    def reap_expired(self, limit: int = 500) -> ReapResult:
        """Requeue lapsed leases (the attempt counts); fail them when attempts are spent."""
        now = time.time()
        requeued = failed = 0
        with self._write() as conn:
            rows = conn.execute(SQL["expired_leases"], {"now": now, "limit": limit}).fetchall()
            for r in rows:
                # The kit's reap verdict (backends/kit.py).
                verdict = kit.reap_verdict(
                    bool(r["cancel_requested"]), r["attempt"], r["max_attempts"], r["prior_attempts"]
                )
                base = {"id": r["id"], "token": r["lease_token"], "now": now, "error": WORKER_LOST}
                if verdict == "pending":
                    conn.execute(SQL["reap_requeue"], base)
                    requeued += 1
                else:
                    conn.execute(SQL["reap_fail"], {**base, "state": verdict})
                    if verdict == "failed":
                        failed += 1
                audit = kit.reaped_attempt(r["id"], r["attempt"], r["worker"], r["started_at"], now, verdict)
                conn.execute(SQL["insert_attempt"], audit)
        return ReapResult(requeued, failed)

    # -- flow control -------------------------------------------------------
    def queue_update(self, update: QueueUpdate) -> QueueSettings:
        """Apply a checked change to a queue's settings in one transaction."""
        with self._write() as conn:
            return sqlite_flow.update(conn, update)

    def queue_usage(self, names: Sequence[str] | None = None) -> list[QueueUsage]:
        """Managed queues against their limits, by name."""
        return sqlite_flow.usage(self._conn(), names, time.time())

    # -- results -------------------------------------------------------------
    def watch_finishes(self, job_ids: Sequence[str], wake: Callable[[], None]) -> FinishWatch:
        """Never live: another process's commit to the file sends nothing, so waiters poll."""
        return FinishWatch(job_ids, wake)

    # -- admin ---------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempts."""
        conn = self._conn()
        row = conn.execute(SQL["get_job"], {"id": job_id}).fetchone()
        if row is None:
            return None
        return kit.job_record(row, map(kit.attempt_record, conn.execute(SQL["job_attempts"], {"id": job_id})))

    def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, and the total that matched."""
        conn = self._conn()
        params = kit.query_params(query)
        total = conn.execute(SQL["count_jobs"], params).fetchone()[0]
        rows = conn.execute(SQL["list_jobs"], params).fetchall()
        return Page([kit.job_record(r) for r in rows], total)

    def stats(self) -> Stats:
        """Counts by state, overall and per queue."""
        conn = self._conn()
        groups = conn.execute(SQL["stats"]).fetchall()
        now = time.time()
        oldest = conn.execute(SQL["oldest_pending"], {"now": now}).fetchone()[0]
        return kit.stats_from_counts(groups, None if oldest is None else now - oldest)

    def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending: a fresh budget, attempt numbers go on."""
        with self._write() as conn:
            self._resubmit_one(conn, job_id, payload)
        record = self.get(job_id)
        assert record is not None
        return record

    def _resubmit_one(self, conn: sqlite3.Connection, job_id: str, payload: str | None) -> None:
        cur = conn.execute(SQL["resubmit"], {"id": job_id, "now": time.time(), "payload": payload})
        if cur.rowcount == 0:
            raise kit.cannot_resubmit(job_id, self._state_of(conn, job_id))

    def resubmit_many(self, query: JobQuery, payload: str | None = None) -> list[str]:
        """Resubmit all failed/cancelled jobs matching ``query``, oldest first; their ids."""
        with self._write() as conn:
            ids = [r[0] for r in conn.execute(SQL["resubmittable_ids"], kit.query_params(query))]
            for job_id in ids:
                self._resubmit_one(conn, job_id, payload)
        return ids

    def cancel(self, job_id: str) -> JobRecord:
        """Waiting: cancelled now. Processing: flagged; the worker stops it."""
        with self._write() as conn:
            params = {"id": job_id, "now": time.time(), "error": kit.CANCELLED_BEFORE_RUN}
            waiting = conn.execute(SQL["cancel_waiting"], params).rowcount
            if not waiting and conn.execute(SQL["cancel_running"], {"id": job_id}).rowcount == 0:
                raise kit.cannot_cancel(job_id, self._state_of(conn, job_id))
        record = self.get(job_id)
        assert record is not None
        return record

    def delete(self, job_id: str) -> None:
        """Delete a job (not while processing) and its audit records."""
        with self._write() as conn:
            if conn.execute(SQL["delete_job"], {"id": job_id}).rowcount == 0:
                self._state_of(conn, job_id)
                raise kit.cannot_delete(job_id)
            conn.execute(SQL["delete_attempts"], {"id": job_id})

    def delete_many(self, query: JobQuery) -> BulkDeletion:
        """Delete every matching job but the processing ones, in one write transaction."""
        with self._write() as conn:
            rows = conn.execute(SQL["matching_jobs"], kit.query_params(query)).fetchall()
            doomed = [{"id": r[0]} for r in rows if r[1] != "processing"]
            conn.executemany(SQL["delete_job"], doomed)
            conn.executemany(SQL["delete_attempts"], doomed)
        return BulkDeletion([d["id"] for d in doomed], len(rows) - len(doomed))

    @staticmethod
    def _state_of(conn: sqlite3.Connection, job_id: str) -> str:
        """The job's state, or JobNotFound."""
        row = conn.execute(SQL["job_state"], {"id": job_id}).fetchone()
        if row is None:
            raise kit.job_not_found(job_id)
        return str(row[0])

    def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Delete one batch of finished jobs (and their audit records)."""
        with self._write() as conn:
            ids = conn.execute(
                SQL["purge"], {"states": json.dumps(list(states)), "before": before, "limit": batch_size}
            ).fetchall()
            conn.executemany(SQL["delete_attempts"], [{"id": r[0]} for r in ids])
        return len(ids)

    def audits(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[AttemptRecord]:
        """Attempt records, newest first."""
        conn = self._conn()
        if job_id is None:
            rows = conn.execute(SQL["audits_all"], {"limit": limit, "offset": offset})
        else:
            rows = conn.execute(SQL["audits_job"], {"job_id": job_id, "limit": limit, "offset": offset})
        return [kit.attempt_record(r) for r in rows]

    def record_actions(self, actions: Sequence[NewAction]) -> None:
        """Store actions and their job links in one write transaction."""
        with self._write() as conn:
            now = time.time()
            for action in actions:
                row = {
                    "at": now,
                    "actor": action.actor,
                    "role": action.role,
                    "action": action.action,
                    "job_id": kit.action_job_id(action.job_ids),
                    "count": action.count,
                    "detail": action.detail,
                }
                (action_id,) = conn.execute(SQL["insert_action"], row).fetchone()
                conn.executemany(SQL["insert_action_job"], [(action_id, j) for j in action.job_ids])

    def list_actions(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[ActionRecord]:
        """Recorded actions, newest first, optionally only those naming ``job_id``."""
        conn = self._conn()
        if job_id is None:
            rows = conn.execute(SQL["actions_all"], {"limit": limit, "offset": offset})
        else:
            rows = conn.execute(SQL["actions_job"], {"job_id": job_id, "limit": limit, "offset": offset})
        return [kit.action_record(kit.by_position(kit.ACTION_FIELDS, r)) for r in rows]

    # -- observability -------------------------------------------------------------
    def workers_beat(self, beats: Sequence[WorkerBeat], ttl_seconds: float) -> None:
        """Register or renew workers until ``ttl_seconds`` from now, in one transaction."""
        now = time.time()
        rows = [
            {"id": b.id, "info": kit.worker_info(b), "now": now, "expires": now + ttl_seconds} for b in beats
        ]
        with self._write() as conn:
            conn.executemany(SQL["worker_beat"], rows)
            conn.execute(SQL["workers_forget_expired"], {"now": now})

    def workers_remove(self, worker_ids: Sequence[str]) -> None:
        """Take workers off the list."""
        with self._write() as conn:
            conn.executemany(SQL["worker_remove"], [{"id": w} for w in worker_ids])

    def workers_live(self) -> list[WorkerRecord]:
        """Workers whose beat has not expired, oldest first."""
        rows = self._conn().execute(SQL["workers_live"], {"now": time.time()}).fetchall()
        records = [kit.worker_record(r["info"], r["last_seen_at"]) for r in rows]
        return sorted(records, key=lambda r: (r.beat.started_at, r.beat.id))

    def queue_gauges(self) -> Gauges:
        """Counts by queue and state (the state index), and each queue's oldest due pending job."""
        conn = self._conn()
        groups = conn.execute(SQL["stats"]).fetchall()
        now = time.time()
        oldest = conn.execute(SQL["oldest_pending_by_queue"], {"now": now}).fetchall()
        return kit.gauges_from(groups, [(queue, now - due) for queue, due in oldest])

    def jobs_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        """Store progress on the jobs whose lease the update still holds, in one transaction."""
        now = time.time()
        rows = [
            {"id": u.job_id, "token": u.lease_token, "progress": kit.progress_text(u, now)} for u in updates
        ]
        with self._write() as conn:
            conn.executemany(SQL["job_progress"], rows)


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements the way SQLite's own parser sees them."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement in migration: {buffer[:80]!r}")
