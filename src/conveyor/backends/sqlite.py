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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import BadURL, ConfigurationError, InvalidState, JobNotFound, SchemaMismatch
from ..states import State
from . import sqlfile
from .base import (
    WORKER_LOST,
    AttemptRecord,
    ClaimedJob,
    ClaimRequest,
    EnqueueResult,
    JobQuery,
    JobRecord,
    Lease,
    LeaseRenewal,
    NewJob,
    Outcome,
    Page,
    ReapResult,
    Stats,
    decode_payload,
    from_ts,
)

SQL = sqlfile.load("sqlite.sql")
SCHEMA_VERSION = 1
MIGRATIONS = {1: SQL["migration_001"]}

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


class SQLiteBackend:
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
        if all(j.key is None for j in jobs):
            conn.executemany(
                SQL["insert_plain_jobs"],
                [
                    (j.id, j.task, j.queue, j.payload, j.priority, _due(j, now),
                     now, j.max_attempts, j.on_complete)
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
            "run_at": _due(job, now),
            "now": now,
            "max_attempts": job.max_attempts,
            "key": job.key,
            "on_complete": job.on_complete,
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
            for queue in request.queues:
                cursor = conn.execute(
                    SQL["claim_candidates"], {"queue": queue, "now": now, "limit": request.limit}
                )
                candidates.extend((-r[1], r[2], r[0]) for r in cursor)
            if not candidates:
                return []
            chosen = [
                c[2] for c in (sorted(candidates)[: request.limit] if len(request.queues) > 1 else candidates)
            ]
            params = {
                "token": token,
                "now": now,
                "lease": request.lease_seconds,
                "worker": request.worker_id,
                "ids": json.dumps(chosen),
            }
            rows = conn.execute(SQL["claim"], params).fetchall()
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
            )
            for r in rows
        ]
        claimed.sort(key=lambda j: (-j.priority, j.run_at, j.id))
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
                    conn.execute(SQL["insert_attempt"], _attempt_row(o))
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
                base = {"id": r["id"], "token": r["lease_token"], "now": now, "error": WORKER_LOST}
                if r["cancel_requested"]:
                    conn.execute(SQL["reap_fail"], {**base, "state": "cancelled"})
                    outcome = "cancelled"
                elif r["attempt"] >= r["max_attempts"]:
                    conn.execute(SQL["reap_fail"], {**base, "state": "failed"})
                    outcome = "lost"
                    failed += 1
                else:
                    conn.execute(SQL["reap_requeue"], base)
                    outcome = "lost"
                    requeued += 1
                conn.execute(
                    SQL["insert_attempt"],
                    {
                        "job_id": r["id"],
                        "attempt": r["attempt"],
                        "worker": r["worker"],
                        "started_at": r["started_at"],
                        "finished_at": now,
                        "outcome": outcome,
                        "error": WORKER_LOST,
                        "traceback": None,
                        "status_code": None,
                        "response_excerpt": None,
                    },
                )
        return ReapResult(requeued, failed)

    # -- admin ---------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempts."""
        conn = self._conn()
        row = conn.execute(SQL["get_job"], {"id": job_id}).fetchone()
        if row is None:
            return None
        record = _record(row)
        record.attempts = [_attempt(a) for a in conn.execute(SQL["job_attempts"], {"id": job_id})]
        return record

    def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, and the total that matched."""
        conn = self._conn()
        params = _query_params(query)
        total = conn.execute(SQL["count_jobs"], params).fetchone()[0]
        rows = conn.execute(SQL["list_jobs"], params).fetchall()
        return Page([_record(r) for r in rows], total)

    def stats(self) -> Stats:
        """Counts by state, overall and per queue."""
        conn = self._conn()
        counts = dict.fromkeys(("pending", "processing", "retry", "completed", "failed", "cancelled"), 0)
        queues: dict[str, dict[str, int]] = {}
        for queue, state, n in conn.execute(SQL["stats"]):
            counts[state] += n
            queues.setdefault(queue, dict.fromkeys(counts, 0))[state] = n
        now = time.time()
        oldest = conn.execute(SQL["oldest_pending"], {"now": now}).fetchone()[0]
        return Stats(counts, queues, None if oldest is None else max(0.0, now - oldest))

    def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending, attempts reset."""
        with self._write() as conn:
            self._resubmit_one(conn, job_id, payload)
        record = self.get(job_id)
        assert record is not None
        return record

    def _resubmit_one(self, conn: sqlite3.Connection, job_id: str, payload: str | None) -> None:
        cur = conn.execute(SQL["resubmit"], {"id": job_id, "now": time.time(), "payload": payload})
        if cur.rowcount == 0:
            row = conn.execute(SQL["get_job"], {"id": job_id}).fetchone()
            if row is None:
                raise JobNotFound(f"no job with id {job_id!r}")
            raise InvalidState(
                f"job {job_id} is {row['state']}; only failed or cancelled jobs can be resubmitted"
            )

    def resubmit_many(self, query: JobQuery, payload: str | None = None) -> int:
        """Resubmit all failed/cancelled jobs matching ``query``; returns how many."""
        with self._write() as conn:
            ids = [r[0] for r in conn.execute(SQL["resubmittable_ids"], _query_params(query))]
            for job_id in ids:
                self._resubmit_one(conn, job_id, payload)
        return len(ids)

    def cancel(self, job_id: str) -> JobRecord:
        """Waiting: cancelled now. Processing: flagged; the worker stops it."""
        with self._write() as conn:
            waiting = conn.execute(SQL["cancel_waiting"], {"id": job_id, "now": time.time()}).rowcount
            if not waiting and conn.execute(SQL["cancel_running"], {"id": job_id}).rowcount == 0:
                row = conn.execute(SQL["get_job"], {"id": job_id}).fetchone()
                if row is None:
                    raise JobNotFound(f"no job with id {job_id!r}")
                raise InvalidState(f"job {job_id} is already {row['state']}; nothing to cancel")
        record = self.get(job_id)
        assert record is not None
        return record

    def delete(self, job_id: str) -> None:
        """Delete a job (not while processing) and its audit records."""
        with self._write() as conn:
            if conn.execute(SQL["delete_job"], {"id": job_id}).rowcount == 0:
                row = conn.execute(SQL["get_job"], {"id": job_id}).fetchone()
                if row is None:
                    raise JobNotFound(f"no job with id {job_id!r}")
                raise InvalidState(f"job {job_id} is processing; cancel it before deleting it")
            conn.execute(SQL["delete_attempts"], {"id": job_id})

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
        return [_attempt(r) for r in rows]


def _due(job: NewJob, now: float) -> float:
    """When a new job may first run: its ``run_at``, else ``delay`` seconds from now."""
    return job.run_at if job.run_at is not None else now + job.delay


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


def _attempt_row(o: Outcome) -> dict[str, Any]:
    return {
        "job_id": o.job_id,
        "attempt": o.attempt,
        "worker": o.worker,
        "started_at": o.started_at,
        "finished_at": o.finished_at,
        "outcome": o.kind,
        "error": o.error,
        "traceback": o.traceback,
        "status_code": o.status_code,
        "response_excerpt": o.response_excerpt,
    }


def _query_params(query: JobQuery) -> dict[str, Any]:
    return {
        "status": query.status,
        "queue": query.queue,
        "task": query.task,
        "created_after": query.created_after,
        "created_before": query.created_before,
        "limit": query.limit,
        "offset": query.offset,
    }


def _record(row: sqlite3.Row) -> JobRecord:
    args, kwargs = decode_payload(row["payload"])
    state: State = row["state"]
    return JobRecord(
        id=row["id"],
        task=row["task"],
        queue=row["queue"],
        state=state,
        args=args,
        kwargs=kwargs,
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        priority=row["priority"],
        run_at=from_ts(row["run_at"]),  # type: ignore[arg-type]
        created_at=from_ts(row["created_at"]),  # type: ignore[arg-type]
        started_at=from_ts(row["started_at"]),
        finished_at=from_ts(row["finished_at"]),
        result=None if row["result"] is None else json.loads(row["result"]),
        error=row["error"],
        traceback=row["traceback"],
        key=row["key"],
        worker=row["worker"],
        lease_expires_at=from_ts(row["lease_expires_at"]),
        cancel_requested=bool(row["cancel_requested"]),
        on_complete=row["on_complete"],
    )


def _attempt(row: sqlite3.Row) -> AttemptRecord:
    return AttemptRecord(
        job_id=row["job_id"],
        attempt=row["attempt"],
        worker=row["worker"],
        started_at=from_ts(row["started_at"]),
        finished_at=from_ts(row["finished_at"]),
        outcome=row["outcome"],
        error=row["error"],
        traceback=row["traceback"],
        status_code=row["status_code"],
        response_excerpt=row["response_excerpt"],
    )
