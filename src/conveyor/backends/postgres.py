"""PostgreSQL: many worker machines on one database, transactional enqueue, LISTEN/NOTIFY wake-ups.

One pool of autocommit connections (psycopg 3 + psycopg-pool); every hot operation is
one statement and one round trip: a batch insert from ``unnest``, a claim that locks
with ``FOR UPDATE SKIP LOCKED`` and updates in the same statement, a lease renewal, a
``finish_many`` that applies every outcome and its audit rows at once, a reaper pass.
Leases and due times are on the database clock (``now()``), so worker clocks never
matter. The schema is installed by versioned migrations (``conveyor migrate APP``) in a
configurable schema (``?schema=`` in the URL, default ``conveyor``); see docs/postgres.md.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import BackendUnavailable, ConfigurationError, InvalidState, JobNotFound, SchemaMismatch
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
from .pg_listener import Listener, Snapshot
from .pg_url import PostgresOptions, parse_postgres_url, redact

SQL = sqlfile.load("postgres.sql")
#: Migration blocks by version; a schema records each one it has applied.
MIGRATIONS: dict[int, str] = {
    int(name.removeprefix("migration_")): block
    for name, block in SQL.items()
    if name.startswith("migration_")
}
SCHEMA_VERSION = max(MIGRATIONS)
_FILTERED = ("list_jobs", "count_jobs", "resubmit_many")
#: The array-name prefix of each outcome kind in the finish statement.
_KINDS = {"c": "completed", "r": "retry", "f": "failed", "x": "cancelled", "l": "released"}
_FRAGMENTS = ("job_columns", "attempt_columns")
#: How long a waiter first sleeps when a due job exists that its claim could not take (locked
#: by another claimer, or by a caller's open transaction): short, doubling while it lasts, so
#: never a busy loop.
_LOCKED_DUE_WAIT = 0.01

Row = tuple[Any, ...]
Conn = psycopg.Connection[Row]
#: Pools and listeners a forked child inherited: never used, never closed, never collected.
_INHERITED: list[tuple[object, object]] = []


def _literal(text: str) -> LiteralString:
    """Our own SQL text (from postgres.sql, formatted with psycopg.sql) as a LiteralString.

    The one place where str becomes LiteralString; the detour through object keeps mypy,
    which does not tell the two apart, from calling the cast redundant.
    """
    return cast("LiteralString", cast(object, text))


class Queries:
    """The named blocks of postgres.sql, formatted once for one schema and channel."""

    def __init__(self, schema: str, channel: str) -> None:
        self._args: dict[str, sql.Composable] = {
            "schema": sql.Identifier(schema),
            "channel": sql.Literal(channel),
        }
        for name in _FRAGMENTS:
            self._args[name] = sql.SQL(_literal(SQL[name]))
        self._rendered: dict[str, LiteralString] = {}
        for name, block in SQL.items():
            if name in _FILTERED or name in _FRAGMENTS or name.startswith("filter_"):
                continue
            self._rendered[name] = self._render(sql.SQL(_literal(block)).format(**self._args))

    @staticmethod
    def _render(composed: sql.Composed) -> LiteralString:
        return _literal(composed.as_string(None))

    def __getitem__(self, name: str) -> LiteralString:
        return self._rendered[name]

    def migration(self, version: int) -> LiteralString:
        """The DDL of one migration."""
        return self[f"migration_{version:03d}"]

    def filtered(self, name: str, query: JobQuery) -> sql.Composed:
        """A listing query with one static condition per filter that ``query`` sets."""
        conditions = [sql.SQL(_literal(SQL[f"filter_{field}"])) for field in _filter_fields(query)]
        where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("TRUE")
        return sql.SQL(_literal(SQL[name])).format(filters=where, **self._args)


def _filter_fields(query: JobQuery) -> list[str]:
    fields = ("status", "queue", "task", "created_after", "created_before")
    return [f for f in fields if getattr(query, f) is not None]


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


def _configure(conn: Conn) -> None:
    """Session settings of every pooled connection.

    Generic plans: our statements have fixed shapes, so each is planned once per connection
    instead of at every execution (left to itself PostgreSQL re-plans the claim every time,
    which costs as much as running it). Admin listings ask for custom plans per transaction.
    No JIT: a generic plan cannot know the LIMIT, its cost estimate crosses jit_above_cost on
    a big table, and compiling then takes hundreds of milliseconds for a sub-millisecond claim.
    """
    conn.execute(
        "SELECT set_config('plan_cache_mode', 'force_generic_plan', false), set_config('jit', 'off', false)",
        prepare=False,
    )


def _stale(conn: Conn) -> bool:
    """True for a pooled connection the server has closed (or messaged) while it sat idle.

    An idle connection has nothing to read unless the server went away (a restart,
    ``pg_terminate_backend``): one non-blocking ``select`` per checkout spots that, so the
    statement goes to a live connection instead of failing on a dead one. (The pool's own
    ``check`` hook backs off for a second or more per failed check, far too slow after a
    restart that killed every idle connection at once.)
    """
    if conn.closed or conn.broken:
        return True
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def _connect_failure(exc: psycopg.Error) -> str:
    """The server's reason from libpq's first line (``connection to server at ... failed: why``)."""
    lines = str(exc).strip().splitlines()
    reason = lines[0].rsplit(" failed: ", 1)[-1] if lines else type(exc).__name__
    return " ".join(reason.split()).removeprefix("FATAL: ")


def _unavailable(exc: psycopg.Error) -> bool:
    """Connection-level failures (the server is gone), as opposed to errors of a statement."""
    state = exc.sqlstate
    return state is None or state.startswith("08") or state.startswith("57P")


class PostgresBackend:
    """The Backend protocol on PostgreSQL (see module docstring and docs/postgres.md)."""

    def __init__(self, url: str, *, key_retention: float = 86400.0) -> None:
        self.url = url
        self.options: PostgresOptions = parse_postgres_url(url)
        self.schema = self.options.schema
        self.key_retention = key_retention
        self.queries = Queries(self.schema, self.options.channel)
        self._lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._pool: ConnectionPool[Conn] | None = None
        self._listener: Listener | None = None
        self._ready = False
        self._local = threading.local()
        self._pid = os.getpid()
        #: synchronous_commit for the worker's writes; None keeps the server's setting.
        self._commit: str | None = "off" if self.options.worker_commit == "off" else None

    def __repr__(self) -> str:
        return f"<PostgresBackend {redact(self.url)} schema={self.schema}>"

    # -- connections -------------------------------------------------------------------
    def _forked(self) -> None:
        """After os.fork() the parent's pool and listener are not ours: start afresh.

        Their sockets are shared with the parent, so they are neither used nor closed here
        (closing would end the parent's sessions); they are kept referenced, never collected.
        """
        with self._lock:
            if self._pid != os.getpid():
                _INHERITED.append((self._pool, self._listener))
                self._pool, self._listener, self._pid = None, None, os.getpid()

    def _get_pool(self) -> ConnectionPool[Conn]:
        if self._pid != os.getpid():
            self._forked()
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    opts = self.options
                    self._first_connection()
                    created: ConnectionPool[Conn] = ConnectionPool(
                        opts.conninfo,
                        min_size=opts.pool_min,
                        max_size=opts.pool_max,
                        kwargs={"autocommit": True, "prepare_threshold": opts.prepare_threshold},
                        configure=_configure,
                        timeout=opts.pool_timeout,
                        name=f"conveyor.{self.schema}",
                        open=False,
                    )
                    created.open(wait=False)
                    self._pool = created
                pool = self._pool
        return pool

    def _first_connection(self) -> None:
        """Connect once before the pool opens, so a refused first connection fails fast.

        The pool would retry in the background, logging every failure, and the caller would
        wait ``pool_timeout`` to learn only that no connection came: a wrong database name or
        password is reported at once, in one line, with the server's reason.
        """
        try:
            psycopg.connect(self.options.conninfo, autocommit=True).close()
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL {redact(self.url)}: {_connect_failure(exc)}"
            ) from exc

    @contextmanager
    def _raw_conn(self) -> Iterator[Conn]:
        """A pooled autocommit connection; connection loss becomes BackendUnavailable."""
        try:
            pool = self._get_pool()
            conn = pool.getconn()
            for _ in range(self.options.pool_max):
                if not _stale(conn):
                    break
                conn.close()  # closed, the pool discards it and opens a replacement
                pool.putconn(conn)
                conn = pool.getconn()
            try:
                with conn:  # as pool.connection(): a failed transaction is rolled back
                    yield conn
            finally:
                pool.putconn(conn)
        except PoolTimeout as exc:
            raise BackendUnavailable(
                f"no PostgreSQL connection within {self.options.pool_timeout:g}s ({redact(self.url)}): {exc}"
            ) from exc
        except psycopg.Error as exc:
            if _unavailable(exc):
                raise BackendUnavailable(f"PostgreSQL connection failed: {exc}") from exc
            raise

    @contextmanager
    def _conn(self) -> Iterator[Conn]:
        """A pooled connection to a schema known to be at this version."""
        if not self._ready:
            self._check_schema()
        with self._raw_conn() as conn:
            yield conn

    def _execute(self, query: LiteralString | sql.Composed, params: dict[str, Any]) -> list[Row]:
        """Run one statement and return its rows; a deadlock victim is retried (it was rolled back)."""
        for attempt in range(3):
            try:
                with self._conn() as conn:
                    return conn.execute(query, params).fetchall()
            except psycopg.errors.DeadlockDetected:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def _custom_plans(self) -> Iterator[Conn]:
        """A transaction planned for its actual values: listings whose best plan depends on
        the filters, limit and offset given (the pool's sessions otherwise reuse generic plans)."""
        with self._conn() as conn, conn.transaction():
            conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            yield conn

    def _one(self, query: LiteralString | sql.Composed, params: dict[str, Any] | None = None) -> Row:
        rows = self._execute(query, params or {})
        return rows[0]

    # -- life cycle --------------------------------------------------------------------
    def _check_schema(self) -> None:
        with self._schema_lock:
            if self._ready:
                return
            with self._raw_conn() as conn:
                installed = conn.execute(self.queries["version_table_exists"], {"schema": self.schema})
                version = 0
                if _first(installed.fetchone()):
                    version = _first(conn.execute(self.queries["schema_version"]).fetchone())
            if version == 0:
                # An empty schema is installed on first use, as `conveyor migrate` would; an
                # existing one is never upgraded behind the operator's back.
                try:
                    self.migrate()
                except psycopg.errors.InsufficientPrivilege as exc:
                    raise SchemaMismatch(
                        f"PostgreSQL schema {self.schema!r} is not installed and this user cannot "
                        f"create it ({exc}); run `conveyor migrate APP` as a user who can"
                    ) from exc
                return
            self._refuse_mismatch(version)
            self._ready = True

    def _refuse_mismatch(self, version: int) -> None:
        if version < SCHEMA_VERSION:
            raise SchemaMismatch(
                f"PostgreSQL schema {self.schema!r} is at version {version}, older than this Conveyor "
                f"needs ({SCHEMA_VERSION}): run `conveyor migrate APP` to upgrade it"
            )
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"PostgreSQL schema {self.schema!r} is at version {version}, newer than this Conveyor "
                f"knows ({SCHEMA_VERSION}): upgrade conveyor on this machine (pip install -U conveyor); "
                "`conveyor migrate` never downgrades a schema"
            )

    def migrate(self, *, to_version: int | None = None) -> None:
        """Create or upgrade the schema; idempotent and safe from several machines at once.

        The migrations run in one transaction under an advisory lock on the schema name, so
        concurrent callers queue up and the later ones find nothing left to do. ``to_version``
        stops early (for staged upgrades and tests).
        """
        target = SCHEMA_VERSION if to_version is None else to_version
        if target not in MIGRATIONS:
            raise ValueError(f"to_version must be one of {sorted(MIGRATIONS)}, got {to_version!r}")
        q = self.queries
        with self._raw_conn() as conn, conn.transaction():
            # Unprepared: DDL and one-off statements, and a migration is several statements.
            conn.execute(q["migrate_lock"], {"schema": self.schema}, prepare=False)
            if not _first(
                conn.execute(q["schema_exists"], {"schema": self.schema}, prepare=False).fetchone()
            ):
                conn.execute(q["create_schema"], prepare=False)
            conn.execute(q["version_table"], prepare=False)
            current: int = _first(conn.execute(q["schema_version"], prepare=False).fetchone())
            if current > SCHEMA_VERSION:
                self._refuse_mismatch(current)
            for version in range(current + 1, target + 1):
                conn.execute(q.migration(version), prepare=False)
                conn.execute(q["record_version"], {"version": version}, prepare=False)
        if target == SCHEMA_VERSION:
            self._ready = True

    def schema_version(self) -> int:
        """The version recorded in the schema (0 when nothing is installed)."""
        q = self.queries
        with self._raw_conn() as conn:
            if not _first(conn.execute(q["version_table_exists"], {"schema": self.schema}).fetchone()):
                return 0
            return int(_first(conn.execute(q["schema_version"]).fetchone()))

    def close(self) -> None:
        """Stop the listener and close the pool; the next call opens them again."""
        with self._lock:
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if pool is not None:
            pool.close(timeout=5.0)

    def now(self) -> float:
        """The database clock, POSIX seconds."""
        return float(_first(self._one(self.queries["now"])))

    # -- producers ---------------------------------------------------------------------
    def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """Insert in one statement; with keys, settle each key in order inside one call.

        With ``connection`` (a psycopg ``Connection`` in an open transaction, or a
        non-autocommit one) the jobs are written in the caller's transaction: they exist,
        and workers are notified, only if it commits.
        """
        if not jobs:
            return []
        keyed = any(job.key is not None for job in jobs)
        params = self._enqueue_params(jobs, keyed)
        query = self.queries["enqueue_jobs" if keyed else "insert_jobs"]
        if connection is None:
            rows = self._execute(query, params)
        else:
            caller = self._caller_connection(connection)
            if not self._ready:
                self._check_schema()
            with caller.cursor(row_factory=tuple_row) as cur:
                rows = cur.execute(query, params).fetchall()
        if keyed:
            return [EnqueueResult(r[0], r[1], r[2]) for r in rows]
        return [EnqueueResult(job.id, "pending", True) for job in jobs]

    def _enqueue_params(self, jobs: Sequence[NewJob], keyed: bool) -> dict[str, Any]:
        params: dict[str, Any] = {
            "ids": [j.id for j in jobs],
            "tasks": [j.task for j in jobs],
            "queues": [j.queue for j in jobs],
            "payloads": [j.payload for j in jobs],
            "priorities": [j.priority for j in jobs],
            "run_ats": [_float(j.run_at) for j in jobs],
            "delays": [float(j.delay) for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "on_completes": [j.on_complete for j in jobs],
        }
        if not keyed:
            params["notify"] = list(dict.fromkeys(j.queue for j in jobs))
        else:
            params["keys"] = [j.key for j in jobs]
            params["key_modes"] = [j.key_mode for j in jobs]
            params["key_retention"] = float(self.key_retention)
        return params

    @staticmethod
    def _caller_connection(connection: Any) -> Conn:
        if not isinstance(connection, psycopg.Connection):
            raise ConfigurationError(
                "connection= takes a psycopg (3) Connection on the PostgreSQL backend, got "
                f"{type(connection).__name__}; without it the jobs are committed on their own"
            )
        status = connection.info.transaction_status
        if status == psycopg.pq.TransactionStatus.INERROR:
            raise ConfigurationError("connection= is in a failed transaction; roll it back first")
        if status == psycopg.pq.TransactionStatus.IDLE and connection.autocommit:
            raise ConfigurationError(
                "connection= is in autocommit mode outside a transaction, so the jobs would not be "
                "part of one: enqueue inside `with conn.transaction():`"
            )
        return cast("Conn", connection)

    # -- workers -----------------------------------------------------------------------
    def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs in one statement (FOR UPDATE SKIP LOCKED)."""
        if request.limit < 1 or not request.queues:
            return []
        queues = list(dict.fromkeys(request.queues))
        listener = self._listener
        if listener is not None and listener.listening:
            # What wait_for_jobs compares against: a notification that lands while this
            # claim runs (and that it may have missed) must not be slept through.
            self._local.snapshot = (tuple(queues), listener.snapshot(queues))
        token = secrets.token_hex(8)
        rows = self._execute(
            self.queries["claim"],
            {
                "queues": queues,
                "limit": request.limit,
                "token": token,
                "lease": float(request.lease_seconds),
                "worker": request.worker_id,
                "commit": self._commit,
            },
        )
        claimed = [
            ClaimedJob(
                id=r[0],
                task=r[1],
                queue=r[2],
                payload=r[3],
                attempt=r[4],
                max_attempts=r[5],
                lease_token=token,
                priority=r[6],
                key=r[7],
                on_complete=r[8],
                created_at=r[9],
                run_at=r[10],
            )
            for r in rows
        ]
        claimed.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        if claimed:
            self._local.locked_wait = _LOCKED_DUE_WAIT
        return claimed

    def _get_listener(self) -> Listener | None:
        if not self.options.listen:
            return None
        if self._pid != os.getpid():
            self._forked()
        listener = self._listener
        if listener is None:
            with self._lock:
                if self._listener is None:
                    self._listener = Listener(self.options.conninfo, self.options.channel)
                listener = self._listener
            listener.start()
        return listener

    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Sleep until a NOTIFY for ``queues``, the next delayed job's due time, or ``timeout``.

        Without a live LISTEN connection this polls every ``poll`` seconds (URL parameter).
        """
        deadline = time.monotonic() + timeout
        names = list(dict.fromkeys(queues))
        if not names or timeout <= 0:
            return
        listener = self._get_listener()
        since: Snapshot | None = None
        if listener is not None:
            if not listener.listening:
                listener.wait_listening(min(timeout, 1.0))
            remembered = getattr(self._local, "snapshot", None)
            self._local.snapshot = None
            if remembered is not None and remembered[0] == tuple(names):
                since = remembered[1]
            else:
                since = listener.snapshot(names)
            if listener.changed(names, since):
                return
        due_in = self._next_due(names)
        wait = deadline - time.monotonic()
        if due_in is not None and due_in > 0:
            wait = min(wait, due_in)
        elif due_in is not None:  # due, yet the claim got nothing: it is locked for now
            locked_wait: float = getattr(self._local, "locked_wait", _LOCKED_DUE_WAIT)
            self._local.locked_wait = min(locked_wait * 2, self.options.poll)
            wait = min(wait, locked_wait)
        if listener is None or not listener.listening:
            wait = min(wait, self.options.poll)
        if wait <= 0:
            return
        if listener is None or since is None:
            time.sleep(wait)
        else:
            listener.wait(names, since, wait)

    def _next_due(self, queues: list[str]) -> float | None:
        value = _first(self._one(self.queries["next_due"], {"queues": queues}))
        return None if value is None else float(value)

    def extend_leases(self, leases: Sequence[Lease], lease_seconds: float) -> LeaseRenewal:
        """Renew every held lease in one statement; report lost ones and cancel requests."""
        if not leases:
            return LeaseRenewal(frozenset(), frozenset())
        by_id = {lease.job_id: lease for lease in leases}  # the statement needs each id once
        ordered = sorted(by_id.values(), key=lambda lease: lease.job_id)  # one lock order for every writer
        rows = self._execute(
            self.queries["extend_leases"],
            {
                "ids": [lease.job_id for lease in ordered],
                "tokens": [lease.lease_token for lease in ordered],
                "lease": float(lease_seconds),
                "commit": self._commit,
            },
        )
        held = {r[0] for r in rows}
        flagged = {r[0] for r in rows if r[1]}
        lost = {lease.job_id for lease in leases} - held
        return LeaseRenewal(frozenset(lost), frozenset(flagged))

    def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply every outcome (fenced by its lease token) and its audit row in one statement."""
        if not outcomes:
            return []
        applied: set[int] = set()  # indexes into outcomes
        # The statement needs each job id once; a second outcome for one job (never sent by
        # the worker, possible through the protocol) waits for a statement of its own.
        pending = list(range(len(outcomes)))
        while pending:
            seen: dict[str, int] = {}
            later: list[int] = []
            for i in pending:
                if outcomes[i].job_id in seen:
                    later.append(i)
                else:
                    seen[outcomes[i].job_id] = i
            batch = [outcomes[i] for i in sorted(seen.values(), key=lambda i: outcomes[i].job_id)]
            done = self._finish_batch(batch)  # sorted by job id: one lock order for every writer
            applied.update(i for i in seen.values() if outcomes[i].job_id in done)
            pending = later
        return [i in applied for i in range(len(outcomes))]

    def _finish_batch(self, batch: list[Outcome]) -> set[str]:
        """The ids whose outcome applied. Follow-up jobs (``on_complete`` callbacks) of applied
        outcomes are stored in the same transaction: a crash keeps both or neither."""
        params = self._finish_params(batch)
        if not any(o.follow_ups for o in batch):
            return set(self._one(self.queries["finish"], params)[0] or ())
        for attempt in range(3):
            try:
                with self._conn() as conn, conn.transaction():
                    done = set(_first(conn.execute(self.queries["finish"], params).fetchone()) or ())
                    jobs = [job for o in batch if o.job_id in done for job in o.follow_ups]
                    if jobs:
                        keyed = any(job.key is not None for job in jobs)
                        query = self.queries["enqueue_jobs" if keyed else "insert_jobs"]
                        conn.execute(query, self._enqueue_params(jobs, keyed))
                    return done
            except psycopg.errors.DeadlockDetected:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _finish_params(self, outcomes: list[Outcome]) -> dict[str, Any]:
        params: dict[str, Any] = {"commit": self._commit}
        for prefix, kind in _KINDS.items():
            group = [o for o in outcomes if o.kind == kind]
            params[f"{prefix}_ids"] = [o.job_id for o in group]
            params[f"{prefix}_tokens"] = [o.lease_token for o in group]
            params[f"{prefix}_attempts"] = [o.attempt for o in group]
            params[f"{prefix}_workers"] = [o.worker for o in group]
            params[f"{prefix}_started"] = [_float(o.started_at) for o in group]
            params[f"{prefix}_finished"] = [_float(o.finished_at) for o in group]
            params[f"{prefix}_errors"] = [o.error for o in group]
            params[f"{prefix}_tracebacks"] = [o.traceback for o in group]
            params[f"{prefix}_status_codes"] = [o.status_code for o in group]
            params[f"{prefix}_excerpts"] = [o.response_excerpt for o in group]
            if kind == "completed":
                params["c_results"] = [o.result for o in group]
            elif kind == "retry":
                params["r_delays"] = [float(o.retry_delay) for o in group]
        return params

    def reap_expired(self, limit: int = 500) -> ReapResult:
        """Requeue lapsed leases (the attempt counts); fail them when attempts are spent."""
        row = self._one(self.queries["reap"], {"limit": limit, "error": WORKER_LOST, "commit": self._commit})
        return ReapResult(requeued=int(row[0]), failed=int(row[1]))

    # -- admin -------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempts."""
        with self._conn() as conn:
            row = conn.execute(self.queries["get_job"], {"id": job_id}).fetchone()
            if row is None:
                return None
            attempts = conn.execute(self.queries["job_attempts"], {"id": job_id}).fetchall()
        record = _record(row)
        record.attempts = [_attempt(a) for a in attempts]
        return record

    def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, and the total that matched."""
        params = _query_params(query)
        with self._custom_plans() as conn:
            total = _first(conn.execute(self.queries.filtered("count_jobs", query), params).fetchone())
            rows = conn.execute(self.queries.filtered("list_jobs", query), params).fetchall()
        return Page([_record(r) for r in rows], int(total))

    def stats(self) -> Stats:
        """Counts by state, overall and per queue, and the age of the oldest due pending job."""
        with self._conn() as conn:
            groups = conn.execute(self.queries["stats"]).fetchall()
            oldest = _first(conn.execute(self.queries["oldest_pending"]).fetchone())
        counts = dict.fromkeys(("pending", "processing", "retry", "completed", "failed", "cancelled"), 0)
        queues: dict[str, dict[str, int]] = {}
        for queue, state, n in groups:
            counts[state] += n
            queues.setdefault(queue, dict.fromkeys(counts, 0))[state] = n
        return Stats(counts, queues, None if oldest is None else max(0.0, float(oldest)))

    def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending, attempts reset."""
        row = self._one(self.queries["resubmit"], {"id": job_id, "payload": payload})
        if not row[0]:
            state = self._state_of(job_id)
            raise InvalidState(f"job {job_id} is {state}; only failed or cancelled jobs can be resubmitted")
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return record

    def resubmit_many(self, query: JobQuery, payload: str | None = None) -> int:
        """Resubmit all failed/cancelled jobs matching ``query`` (limit/offset ignored)."""
        params = {**_query_params(query), "payload": payload}
        with self._custom_plans() as conn:
            row = conn.execute(self.queries.filtered("resubmit_many", query), params).fetchone()
        return int(_first(row))

    def cancel(self, job_id: str) -> JobRecord:
        """Waiting: cancelled now. Processing: flagged; the worker's heartbeat carries it."""
        if not self._execute(self.queries["cancel"], {"id": job_id}):
            state = self._state_of(job_id)
            raise InvalidState(f"job {job_id} is already {state}; nothing to cancel")
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return record

    def delete(self, job_id: str) -> None:
        """Delete a job (not while processing) and its audit records."""
        if not self._one(self.queries["delete_job"], {"id": job_id})[0]:
            self._state_of(job_id)
            raise InvalidState(f"job {job_id} is processing; cancel it before deleting it")

    def _state_of(self, job_id: str) -> str:
        """The job's state, or JobNotFound."""
        rows = self._execute(self.queries["job_state"], {"id": job_id})
        if not rows:
            raise JobNotFound(f"no job with id {job_id!r}")
        return str(rows[0][0])

    def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Delete one batch of finished jobs (and their audit records): one short statement."""
        purged = 0
        for state in dict.fromkeys(states):
            params = {"state": state, "before": float(before), "limit": batch_size - purged}
            with self._custom_plans() as conn:
                purged += int(_first(conn.execute(self.queries["purge"], params).fetchone()))
            if purged >= batch_size:
                break
        return purged

    def audits(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[AttemptRecord]:
        """Attempt records, newest first."""
        if job_id is None:
            with self._custom_plans() as conn:
                rows = conn.execute(self.queries["audits_all"], {"limit": limit, "offset": offset}).fetchall()
        else:
            rows = self._execute(
                self.queries["audits_job"], {"job_id": job_id, "limit": limit, "offset": offset}
            )
        return [_attempt(r) for r in rows]


def _float(value: float | None) -> float | None:
    """Array parameters travel in binary, one element type per array: ints become floats."""
    return None if value is None else float(value)


def _first(row: Row | None) -> Any:
    """The first column of a one-row result."""
    if row is None:
        raise RuntimeError("query returned no row")
    return row[0]


def _record(row: Row) -> JobRecord:
    args, kwargs = decode_payload(row[4])
    return JobRecord(
        id=row[0],
        task=row[1],
        queue=row[2],
        state=row[3],
        args=args,
        kwargs=kwargs,
        attempt=row[5],
        max_attempts=row[6],
        priority=row[7],
        run_at=from_ts(row[8]),  # type: ignore[arg-type]
        created_at=from_ts(row[9]),  # type: ignore[arg-type]
        started_at=from_ts(row[10]),
        finished_at=from_ts(row[11]),
        result=None if row[12] is None else json.loads(row[12]),
        error=row[13],
        traceback=row[14],
        key=row[15],
        worker=row[16],
        lease_expires_at=from_ts(row[17]),
        cancel_requested=bool(row[18]),
        on_complete=row[19],
    )


def _attempt(row: Row) -> AttemptRecord:
    return AttemptRecord(
        job_id=row[0],
        attempt=row[1],
        worker=row[2],
        started_at=from_ts(row[3]),
        finished_at=from_ts(row[4]),
        outcome=row[5],
        error=row[6],
        traceback=row[7],
        status_code=row[8],
        response_excerpt=row[9],
    )
