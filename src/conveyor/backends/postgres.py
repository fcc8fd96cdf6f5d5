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

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import BackendUnavailable, ConfigurationError, SchemaMismatch
from . import kit, pg_schema
from .base import (
    WORKER_LOST,
    ClaimedJob,
    ClaimRequest,
    EnqueueResult,
    FinishWatch,
    Lease,
    LeaseRenewal,
    NewJob,
    Outcome,
    ReapResult,
)
from .pg_admin import PostgresAdmin
from .pg_flow import PostgresFlow
from .pg_listener import FinishListener, Listener, Snapshot
from .pg_maintenance import PostgresMaintenance
from .pg_observe import PostgresObservability
from .pg_schema import MIGRATIONS, SCHEMA_VERSION, Queries, first
from .pg_session import check_caller_transaction, configure_session, is_connection_failure, is_stale
from .pg_url import PostgresOptions, parse_postgres_url, redact

#: How long a waiter first sleeps when a due job exists that its claim could not take (locked
#: by another claimer, or by a caller's open transaction): short, doubling while it lasts, so
#: never a busy loop.
_LOCKED_DUE_WAIT = 0.01
#: The most it doubles to when one of the queues has flow-control settings: there a due job
#: may be held back by the queue's limits, which free up as jobs finish and rate windows
#: slide, not only at a commit that notifies. Other queues double up to the poll interval.
_LOCKED_DUE_CAP = 0.05

Row = tuple[Any, ...]
Conn = psycopg.Connection[Row]
#: Pools and listeners a forked child inherited: never used, never closed, never collected.
_INHERITED: list[tuple[object, object]] = []


def _connect_failure(exc: psycopg.Error) -> str:
    """The server's reason from libpq's first line (``connection to server at ... failed: why``)."""
    lines = str(exc).strip().splitlines()
    reason = lines[0].rsplit(" failed: ", 1)[-1] if lines else type(exc).__name__
    return " ".join(reason.split()).removeprefix("FATAL: ")


class PostgresBackend(PostgresMaintenance, PostgresFlow, PostgresAdmin, PostgresObservability):
    """The Backend protocol on PostgreSQL (see module docstring and docs/postgres.md)."""

    def __init__(self, url: str, *, key_retention: float = 86400.0) -> None:
        self.url = url
        self.options: PostgresOptions = parse_postgres_url(url)
        self.schema = self.options.schema
        self.key_retention = key_retention
        self.queries = Queries(self.schema, self.options.channel, self.options.finished_channel)
        self._lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._pool: ConnectionPool[Conn] | None = None
        self._listener: Listener | None = None
        self._finish_listener: FinishListener | None = None
        #: Job.result waiters, woken by the finish listener (started by the first watch).
        self._finishes = kit.FinishHub(live=self._finishes_live, on_watch=self._start_finish_listener)
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
                _INHERITED.append((self._finish_listener, None))
                self._pool, self._listener, self._pid = None, None, os.getpid()
                self._finish_listener = None

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
                        configure=configure_session,
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
                if not is_stale(conn):
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
            if is_connection_failure(exc):
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
    def ensure_schema(self) -> None:
        """Check (or, on an empty database, install) the schema once; the async side calls this too."""
        if not self._ready:
            self._check_schema()

    def _check_schema(self) -> None:
        with self._schema_lock:
            if self._ready:
                return
            with self._raw_conn() as conn:
                installed = conn.execute(self.queries["version_table_exists"], {"schema": self.schema})
                version = 0
                if first(installed.fetchone()):
                    version = first(conn.execute(self.queries["schema_version"]).fetchone())
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
            pg_schema.refuse_mismatch(self.schema, version)
            self._ready = True

    def migrate(self, *, to_version: int | None = None) -> None:
        """Create or upgrade the schema; idempotent and safe from several machines at once.

        ``to_version`` stops early (for staged upgrades and tests).
        """
        target = SCHEMA_VERSION if to_version is None else to_version
        with self._raw_conn() as conn:
            pg_schema.migrate(conn, self.queries, self.schema, target)
        if target == SCHEMA_VERSION:
            self._ready = True

    def schema_version(self) -> int:
        """The version recorded in the schema (0 when nothing is installed)."""
        with self._raw_conn() as conn:
            return pg_schema.installed_version(conn, self.queries, self.schema)

    def close(self) -> None:
        """Stop the listener and close the pool; the next call opens them again."""
        with self._lock:
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
            finish_listener, self._finish_listener = self._finish_listener, None
        for stopping in (listener, finish_listener):
            if stopping is not None:
                stopping.close()
        if pool is not None:
            pool.close(timeout=5.0)

    def now(self) -> float:
        """The database clock, POSIX seconds."""
        return float(first(self._one(self.queries["now"])))

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
        params = self.enqueue_params(jobs, keyed)
        query = self.queries["enqueue_jobs" if keyed else "insert_jobs"]
        traced = keyed and any(job.trace_context for job in jobs)
        if connection is None and not traced:
            rows = self._execute(query, params)
        elif connection is None:
            with self._conn() as conn, conn.transaction():
                rows = conn.execute(query, params).fetchall()
                conn.execute(self.queries["set_trace_contexts"], self.trace_params(jobs, rows))
        else:
            caller = self._caller_connection(connection)
            if not self._ready:
                self._check_schema()
            with caller.cursor(row_factory=tuple_row) as cur:
                rows = cur.execute(query, params).fetchall()
                if traced:
                    cur.execute(self.queries["set_trace_contexts"], self.trace_params(jobs, rows))
        if keyed:
            return [EnqueueResult(r[0], r[1], r[2]) for r in rows]
        return [EnqueueResult(job.id, "pending", True) for job in jobs]

    def enqueue_params(self, jobs: Sequence[NewJob], keyed: bool) -> dict[str, Any]:
        """The bound values of ``insert_jobs`` (no keys) or ``enqueue_jobs`` (keys), sync or async."""
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
            "groups": [j.group for j in jobs],
        }
        if not keyed:
            params["trace_contexts"] = [j.trace_context for j in jobs]
            params["notify"] = list(dict.fromkeys(j.queue for j in jobs))
        else:
            params["keys"] = [j.key for j in jobs]
            params["key_modes"] = [j.key_mode for j in jobs]
            params["key_retention"] = float(self.key_retention)
        return params

    @staticmethod
    def trace_params(jobs: Sequence[NewJob], rows: Sequence[Any]) -> dict[str, Any]:
        """Values of ``set_trace_contexts``: the keyed jobs created (a matched key keeps its own)."""
        created = {r[0] for r in rows if r[2]}
        traced = [j for j in jobs if j.trace_context and j.id in created]
        return {"ids": [j.id for j in traced], "trace_contexts": [j.trace_context for j in traced]}

    @staticmethod
    def _caller_connection(connection: Any) -> Conn:
        if not isinstance(connection, psycopg.Connection):
            raise ConfigurationError(
                "connection= takes a psycopg (3) Connection on the PostgreSQL backend, got "
                f"{type(connection).__name__}; without it the jobs are committed on their own"
            )
        check_caller_transaction(connection, "with conn.transaction():")
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
        flow_limit = request.limit if request.start_limit is None else min(request.limit, request.start_limit)
        rows = self._execute(
            self.queries["claim"],
            {
                "queues": queues,
                "limit": request.limit,
                "flow_limit": flow_limit,
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
                prior_attempts=r[11],
                group=r[12],
                trace_context=r[13],
            )
            for r in rows
        ]
        claimed.sort(key=kit.claim_order)
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
        due_in, managed = self._next_due(names)
        wait = deadline - time.monotonic()
        if due_in is not None and due_in > 0:
            wait = min(wait, due_in)
        elif due_in is not None:  # due, yet the claim got nothing: locked, or held back by limits
            locked_wait: float = getattr(self._local, "locked_wait", _LOCKED_DUE_WAIT)
            cap = _LOCKED_DUE_CAP if managed else self.options.poll
            self._local.locked_wait = min(locked_wait * 2, self.options.poll, cap)
            wait = min(wait, locked_wait)
        if listener is None or not listener.listening:
            wait = min(wait, self.options.poll)
        if wait <= 0:
            return
        if listener is None or since is None:
            time.sleep(wait)
        else:
            listener.wait(names, since, wait)

    def _next_due(self, queues: list[str]) -> tuple[float | None, bool]:
        """Seconds until the earliest waiting job is due, and whether a queue has flow control."""
        value, managed = self._one(self.queries["next_due"], {"queues": queues})
        return (None if value is None else float(value)), bool(managed)

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
                    done = set(first(conn.execute(self.queries["finish"], params).fetchone()) or ())
                    jobs = [job for o in batch if o.job_id in done for job in o.follow_ups]
                    if jobs:
                        keyed = any(job.key is not None for job in jobs)
                        query = self.queries["enqueue_jobs" if keyed else "insert_jobs"]
                        conn.execute(query, self.enqueue_params(jobs, keyed))
                    return done
            except psycopg.errors.DeadlockDetected:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _finish_params(self, outcomes: list[Outcome]) -> dict[str, Any]:
        params: dict[str, Any] = {"commit": self._commit}
        unknown = {o.kind for o in outcomes} - set(kit.OUTCOME_KINDS)
        if unknown:
            raise kit.unknown_outcome_kind(min(unknown))
        # Each kind's parallel arrays are named after it: completed_ids, retry_tokens...
        for kind in kit.OUTCOME_KINDS:
            group = [o for o in outcomes if o.kind == kind]
            params[f"{kind}_ids"] = [o.job_id for o in group]
            params[f"{kind}_tokens"] = [o.lease_token for o in group]
            params[f"{kind}_attempts"] = [o.attempt for o in group]
            params[f"{kind}_workers"] = [o.worker for o in group]
            params[f"{kind}_started"] = [_float(o.started_at) for o in group]
            params[f"{kind}_finished"] = [_float(o.finished_at) for o in group]
            params[f"{kind}_errors"] = [o.error for o in group]
            params[f"{kind}_tracebacks"] = [o.traceback for o in group]
            params[f"{kind}_status_codes"] = [o.status_code for o in group]
            params[f"{kind}_excerpts"] = [o.response_excerpt for o in group]
        params["completed_results"] = [o.result for o in outcomes if o.kind == "completed"]
        params["retry_delays"] = [float(o.retry_delay) for o in outcomes if o.kind == "retry"]
        traced = [o for o in outcomes if o.trace_id is not None]
        params["traced_ids"] = [o.job_id for o in traced]
        params["trace_ids"] = [o.trace_id for o in traced]
        return params

    def reap_expired(self, limit: int = 500) -> ReapResult:
        """Requeue lapsed leases (the attempt counts); fail them when attempts are spent."""
        row = self._one(self.queries["reap"], {"limit": limit, "error": WORKER_LOST, "commit": self._commit})
        return ReapResult(requeued=int(row[0]), failed=int(row[1]))

    # -- results -----------------------------------------------------------------------
    def watch_finishes(self, job_ids: Sequence[str], wake: Callable[[], None]) -> FinishWatch:
        """Woken by NOTIFY on the finish channel; live once the finish listener listens.

        The first watch starts the listener thread without waiting for it: until it
        listens the watch is not live (its waiter polls), and it is woken when it is.
        """
        return self._finishes.watch(job_ids, wake)

    def _finishes_live(self) -> bool:
        listener = self._finish_listener
        return listener is not None and listener.listening and self._pid == os.getpid()

    def _start_finish_listener(self) -> None:
        if not self.options.listen:
            return
        if self._pid != os.getpid():
            self._forked()
        listener = self._finish_listener
        if listener is None:
            with self._lock:
                listener = self._finish_listener
                if listener is None:
                    listener = self._finish_listener = FinishListener(
                        self.options.conninfo,
                        self.options.finished_channel,
                        self._finishes,
                        self.queries["finish_listener_lock"],
                    )
        listener.start()


def _float(value: float | None) -> float | None:
    """Array parameters travel in binary, one element type per array: ints become floats."""
    return None if value is None else float(value)


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresBackend"]
