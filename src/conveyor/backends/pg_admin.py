"""PostgreSQL: the admin operations of the Backend protocol, and the row mapping they share.

A mixin of :class:`~conveyor.backends.postgres.PostgresBackend` (which supplies ``_conn``,
``_custom_plans``, ``_execute``, ``_one`` and ``queries``), kept in a module of its own so
the engine's main module stays about its job life cycle: reading and listing jobs,
resubmitting, cancelling, deleting and purging them, attempt records and the operators'
action trail. The async backend maps its rows with the same :func:`job_of` and
:func:`attempt_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, LiteralString

from psycopg import sql

from ..states import State
from . import kit
from .base import ActionRecord, AttemptRecord, BulkDeletion, JobQuery, JobRecord, NewAction, Page, Stats
from .pg_schema import Queries, first
from .pg_session import Conn

Row = tuple[Any, ...]


def job_fields(row: Row) -> dict[str, Any]:
    """A job row (the job_columns fragment, in the kit's JOB_FIELDS order) by name."""
    return kit.by_position(kit.JOB_FIELDS, row)


def attempt_of(row: Row) -> AttemptRecord:
    """An attempt row (the attempt_columns fragment, in the kit's ATTEMPT_FIELDS order)."""
    return kit.attempt_record(kit.by_position(kit.ATTEMPT_FIELDS, row))


def job_of(row: Row, attempts: Iterable[Row] = ()) -> JobRecord:
    """A job row and its attempt rows as one JobRecord."""
    return kit.job_record(job_fields(row), map(attempt_of, attempts))


class PostgresAdmin:
    """Job reads, admin writes, attempt records and actions on PostgreSQL (mixed into PostgresBackend)."""

    if TYPE_CHECKING:  # supplied by PostgresBackend
        queries: Queries

        def _conn(self) -> AbstractContextManager[Conn]: ...

        def _custom_plans(self) -> AbstractContextManager[Conn]: ...

        def _execute(self, query: LiteralString | sql.Composed, params: dict[str, Any]) -> list[Row]: ...

        def _one(self, query: LiteralString | sql.Composed, params: dict[str, Any] | None = None) -> Row: ...

    # -- admin -------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempts."""
        with self._conn() as conn:
            row = conn.execute(self.queries["get_job"], {"id": job_id}).fetchone()
            if row is None:
                return None
            attempts = conn.execute(self.queries["job_attempts"], {"id": job_id}).fetchall()
        return kit.job_record(job_fields(row), map(attempt_of, attempts))

    def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, and the total that matched."""
        params = kit.query_params(query)
        with self._custom_plans() as conn:
            total = first(conn.execute(self.queries.filtered("count_jobs", query), params).fetchone())
            rows = conn.execute(self.queries.filtered("list_jobs", query), params).fetchall()
        return Page([kit.job_record(job_fields(r)) for r in rows], int(total))

    def stats(self) -> Stats:
        """Counts by state, overall and per queue, and the age of the oldest due pending job."""
        with self._conn() as conn:
            groups = conn.execute(self.queries["stats"]).fetchall()
            oldest = first(conn.execute(self.queries["oldest_pending"]).fetchone())
        return kit.stats_from_counts(groups, oldest)

    def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending, attempts reset."""
        row = self._one(self.queries["resubmit"], {"id": job_id, "payload": payload})
        if not row[0]:
            raise kit.cannot_resubmit(job_id, self._state_of(job_id))
        record = self.get(job_id)
        if record is None:
            raise kit.job_vanished(job_id, "resubmitted")
        return record

    def resubmit_many(self, query: JobQuery, payload: str | None = None) -> list[str]:
        """Resubmit all failed/cancelled jobs matching ``query`` (limit/offset ignored), oldest first."""
        params = {**kit.query_params(query), "payload": payload}
        with self._custom_plans() as conn:
            row = conn.execute(self.queries.filtered("resubmit_many", query), params).fetchone()
        if row is None:
            raise RuntimeError("query returned no row")
        return list(row[2])

    def delete_many(self, query: JobQuery) -> BulkDeletion:
        """Delete every matching job but the processing ones, in one statement."""
        params = kit.query_params(query)
        with self._custom_plans() as conn:
            row = conn.execute(self.queries.filtered("delete_many", query), params).fetchone()
        if row is None:
            raise RuntimeError("query returned no row")
        return BulkDeletion(list(row[0]), int(row[1]))

    def cancel(self, job_id: str) -> JobRecord:
        """Waiting: cancelled now. Processing: flagged; the worker's heartbeat carries it."""
        if not self._execute(self.queries["cancel"], {"id": job_id, "error": kit.CANCELLED_BEFORE_RUN}):
            raise kit.cannot_cancel(job_id, self._state_of(job_id))
        record = self.get(job_id)
        if record is None:
            raise kit.job_vanished(job_id, "cancelled")
        return record

    def delete(self, job_id: str) -> None:
        """Delete a job (not while processing) and its audit records."""
        if not self._one(self.queries["delete_job"], {"id": job_id})[0]:
            self._state_of(job_id)
            raise kit.cannot_delete(job_id)

    def _state_of(self, job_id: str) -> str:
        """The job's state, or JobNotFound."""
        rows = self._execute(self.queries["job_state"], {"id": job_id})
        if not rows:
            raise kit.job_not_found(job_id)
        return str(rows[0][0])

    def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Delete one batch of finished jobs (and their audit records): one short statement."""
        purged = 0
        for state in dict.fromkeys(states):
            params = {"state": state, "before": float(before), "limit": batch_size - purged}
            with self._custom_plans() as conn:
                purged += int(first(conn.execute(self.queries["purge"], params).fetchone()))
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
        return [attempt_of(r) for r in rows]

    # -- the operators' action trail -----------------------------------------------------
    def record_actions(self, actions: Sequence[NewAction]) -> None:
        """Store actions and their job links in one transaction."""
        with self._conn() as conn, conn.transaction():
            for action in actions:
                row = {
                    "actor": action.actor,
                    "role": action.role,
                    "action": action.action,
                    "job_id": kit.action_job_id(action.job_ids),
                    "count": action.count,
                    "detail": action.detail,
                }
                action_id = first(conn.execute(self.queries["insert_action"], row).fetchone())
                if action.job_ids:
                    links = {"action_id": action_id, "job_ids": list(action.job_ids)}
                    conn.execute(self.queries["insert_action_jobs"], links)

    def list_actions(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[ActionRecord]:
        """Recorded actions, newest first, optionally only those naming ``job_id``."""
        if job_id is None:
            rows = self._execute(self.queries["actions_all"], {"limit": limit, "offset": offset})
        else:
            params = {"job_id": job_id, "limit": limit, "offset": offset}
            rows = self._execute(self.queries["actions_job"], params)
        return [kit.action_record(kit.by_position(kit.ACTION_FIELDS, r)) for r in rows]
