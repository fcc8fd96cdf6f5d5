"""PostgreSQL for producers on an event loop: psycopg's AsyncConnectionPool, the same SQL.

Every statement is the sync backend's (``backend.queries``, the named blocks of
postgres.sql) with the sync backend's parameters (``enqueue_params``) and the
kit's row mapping, so there is one copy of each query. Enqueue, reads and the
admin writes run on async connections; the schema check happens once, on a thread.
``enqueue_many(..., connection=conn)`` takes the caller's ``psycopg.AsyncConnection``
and writes the jobs inside its open transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import BackendUnavailable, ConfigurationError
from ..states import State
from . import kit
from .base import AttemptRecord, EnqueueResult, JobQuery, JobRecord, NewJob, Page, Stats
from .pg_admin import attempt_of, job_of
from .pg_session import check_caller_transaction, is_connection_failure
from .pg_url import redact
from .postgres import PostgresBackend

Row = tuple[Any, ...]
AsyncConn = psycopg.AsyncConnection[Row]


async def _configure_session(conn: AsyncConn) -> None:
    """The pooled sessions' settings, as the sync pool's (see pg_session.configure_session)."""
    await conn.execute(
        "SELECT set_config('plan_cache_mode', 'force_generic_plan', false), set_config('jit', 'off', false)",
        prepare=False,
    )


class AsyncPostgresBackend:
    """The AsyncBackend protocol on PostgreSQL (see module docstring)."""

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend
        self.queries = backend.queries
        self._pool: AsyncConnectionPool[AsyncConn] | None = None
        self._pool_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<AsyncPostgresBackend {redact(self.backend.url)}>"

    async def _get_pool(self) -> AsyncConnectionPool[AsyncConn]:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    await asyncio.to_thread(self.backend.ensure_schema)
                    opts = self.backend.options
                    pool: AsyncConnectionPool[AsyncConn] = AsyncConnectionPool(
                        opts.conninfo,
                        min_size=opts.pool_min,
                        max_size=opts.pool_max,
                        kwargs={"autocommit": True, "prepare_threshold": opts.prepare_threshold},
                        configure=_configure_session,
                        timeout=opts.pool_timeout,
                        name=f"conveyor.async.{self.backend.schema}",
                        open=False,
                    )
                    await pool.open(wait=False)
                    self._pool = pool
        return self._pool

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConn]:
        """A pooled autocommit connection; connection loss becomes BackendUnavailable."""
        try:
            pool = await self._get_pool()
            async with pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise BackendUnavailable(
                f"no PostgreSQL connection within {self.backend.options.pool_timeout:g}s: {exc}"
            ) from exc
        except psycopg.Error as exc:
            if is_connection_failure(exc):
                raise BackendUnavailable(f"PostgreSQL connection failed: {exc}") from exc
            raise

    async def _rows(self, query: LiteralString | sql.Composed, params: dict[str, Any]) -> list[Row]:
        async with self._conn() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def aclose(self) -> None:
        """Close the async pool (the sync backend stays open)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(timeout=5.0)

    # -- producers ---------------------------------------------------------------------
    async def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """Insert in one statement (the sync backend's); with ``connection``, in its transaction."""
        if not jobs:
            return []
        keyed = any(job.key is not None for job in jobs)
        params = self.backend.enqueue_params(jobs, keyed)
        query = self.queries["enqueue_jobs" if keyed else "insert_jobs"]
        traced = keyed and any(job.trace_context for job in jobs)
        if connection is None:
            rows = await self._rows(query, params)
            if traced:  # keyed jobs get their trace context in a second statement
                await self._rows(self.queries["set_trace_contexts"], self.backend.trace_params(jobs, rows))
        else:
            caller = _caller_connection(connection)
            await asyncio.to_thread(self.backend.ensure_schema)
            async with caller.cursor(row_factory=tuple_row) as cur:
                await cur.execute(query, params)
                rows = await cur.fetchall()
                if traced:
                    await cur.execute(
                        self.queries["set_trace_contexts"], self.backend.trace_params(jobs, rows)
                    )
        if keyed:
            return [EnqueueResult(r[0], r[1], r[2]) for r in rows]
        return [EnqueueResult(job.id, "pending", True) for job in jobs]

    # -- admin -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempts, two statements on one connection."""
        async with self._conn() as conn:
            row = await (await conn.execute(self.queries["get_job"], {"id": job_id})).fetchone()
            if row is None:
                return None
            attempts = await (await conn.execute(self.queries["job_attempts"], {"id": job_id})).fetchall()
        return job_of(row, attempts)

    async def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, planned for its actual filters (as the sync one)."""
        params = kit.query_params(query)
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            total = await (await conn.execute(self.queries.filtered("count_jobs", query), params)).fetchone()
            rows = await (await conn.execute(self.queries.filtered("list_jobs", query), params)).fetchall()
        return Page([job_of(r) for r in rows], int(total[0] if total else 0))

    async def stats(self) -> Stats:
        """Counts by state, overall and per queue, and the oldest due pending job's age."""
        async with self._conn() as conn:
            groups = await (await conn.execute(self.queries["stats"])).fetchall()
            oldest = await (await conn.execute(self.queries["oldest_pending"])).fetchone()
        return kit.stats_from_counts(groups, oldest[0] if oldest else None)

    async def _state_of(self, job_id: str) -> str:
        rows = await self._rows(self.queries["job_state"], {"id": job_id})
        if not rows:
            raise kit.job_not_found(job_id)
        return str(rows[0][0])

    async def _reread(self, job_id: str, doing: str) -> JobRecord:
        record = await self.get(job_id)
        if record is None:
            raise kit.job_vanished(job_id, doing)
        return record

    async def cancel(self, job_id: str) -> JobRecord:
        """Waiting: cancelled now. Processing: flagged for its worker."""
        if not await self._rows(self.queries["cancel"], {"id": job_id, "error": kit.CANCELLED_BEFORE_RUN}):
            raise kit.cannot_cancel(job_id, await self._state_of(job_id))
        return await self._reread(job_id, "cancelled")

    async def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending, attempts reset."""
        rows = await self._rows(self.queries["resubmit"], {"id": job_id, "payload": payload})
        if not rows[0][0]:
            raise kit.cannot_resubmit(job_id, await self._state_of(job_id))
        return await self._reread(job_id, "resubmitted")

    async def resubmit_many(self, query: JobQuery, payload: str | None = None) -> int:
        """Resubmit all failed/cancelled jobs matching ``query``."""
        params = {**kit.query_params(query), "payload": payload}
        rows = await self._rows(self.queries.filtered("resubmit_many", query), params)
        return int(rows[0][0])

    async def delete(self, job_id: str) -> None:
        """Delete a job (not while processing) and its audit records."""
        rows = await self._rows(self.queries["delete_job"], {"id": job_id})
        if not rows[0][0]:
            await self._state_of(job_id)
            raise kit.cannot_delete(job_id)

    async def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Delete one batch of finished jobs."""
        purged = 0
        for state in dict.fromkeys(states):
            params = {"state": state, "before": float(before), "limit": batch_size - purged}
            purged += int((await self._rows(self.queries["purge"], params))[0][0])
            if purged >= batch_size:
                break
        return purged

    async def audits(
        self, job_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[AttemptRecord]:
        """Attempt records, newest first."""
        if job_id is None:
            rows = await self._rows(self.queries["audits_all"], {"limit": limit, "offset": offset})
        else:
            params = {"job_id": job_id, "limit": limit, "offset": offset}
            rows = await self._rows(self.queries["audits_job"], params)
        return [attempt_of(r) for r in rows]


def _caller_connection(connection: Any) -> AsyncConn:
    """The caller's AsyncConnection, refused unless its jobs would be part of a transaction."""
    if isinstance(connection, psycopg.Connection):
        raise ConfigurationError(
            "connection= is a sync psycopg Connection: await app.aenqueue(...) needs a "
            "psycopg.AsyncConnection (or call app.enqueue(..., connection=conn))"
        )
    if not isinstance(connection, psycopg.AsyncConnection):
        raise ConfigurationError(
            "connection= takes a psycopg (3) AsyncConnection on the PostgreSQL backend, got "
            f"{type(connection).__name__}; without it the jobs are committed on their own"
        )
    check_caller_transaction(connection, "async with conn.transaction():")
    return connection


__all__ = ["AsyncPostgresBackend"]
