"""PostgreSQL: the schedule and alert operations of the Backend protocol, and the failure count.

A mixin of :class:`~conveyor.backends.postgres.PostgresBackend` (which supplies ``_conn``,
``_execute``, ``schema`` and ``options``). Its queries live in
``sql/postgres_maintenance.sql``, formatted once per schema like the others. Each firing
is one transaction: the compare-and-set on the schedule (or alert) row and the jobs it
stores commit together or not at all, and a concurrent firing of the same row waits for
the row lock and then finds it already moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, LiteralString

from psycopg import sql

from . import kit, sqlfile
from .base import (
    AlertFiring,
    AlertRecord,
    AlertSpec,
    FailureCount,
    NewJob,
    ScheduleFiring,
    ScheduleRecord,
    ScheduleSpec,
)
from .pg_schema import literal
from .pg_session import Conn

BLOCKS = sqlfile.load("postgres_maintenance.sql")


def render(schema: str, channel: str) -> dict[str, LiteralString]:
    """The blocks of postgres_maintenance.sql for one schema and NOTIFY channel."""
    args = {"schema": sql.Identifier(schema), "channel": sql.Literal(channel)}
    return {
        name: literal(sql.SQL(literal(block)).format(**args).as_string(None))
        for name, block in BLOCKS.items()
    }


class PostgresMaintenance:
    """Schedules, alerts and failure counts on PostgreSQL (mixed into PostgresBackend)."""

    if TYPE_CHECKING:  # supplied by PostgresBackend
        schema: str
        options: Any

        def _conn(self) -> AbstractContextManager[Conn]: ...
        def _execute(self, query: LiteralString, params: dict[str, Any]) -> list[Any]: ...

    _maintenance_sql: dict[str, LiteralString] | None = None

    @property
    def _msql(self) -> dict[str, LiteralString]:
        if self._maintenance_sql is None:
            self._maintenance_sql = render(self.schema, self.options.channel)
        return self._maintenance_sql

    # -- schedules ---------------------------------------------------------------------
    def schedule_save(self, specs: Sequence[ScheduleSpec]) -> None:
        """Create or update schedules (an unchanged timing keeps its next tick)."""
        with self._conn() as conn, conn.transaction():
            for spec in specs:
                conn.execute(self._msql["schedule_save"], kit.spec_params(spec))

    def schedule_list(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        rows = self._execute(self._msql["schedule_list"], {})
        return [kit.schedule_record(kit.by_position(kit.SCHEDULE_FIELDS, r)) for r in rows]

    def schedule_delete(self, names: Sequence[str]) -> int:
        """Delete schedules by name."""
        with self._conn() as conn:
            return conn.execute(self._msql["schedule_delete"], {"names": list(names)}).rowcount

    def schedule_pause(self, names: Sequence[str], paused: bool, next_run_at: float | None = None) -> int:
        """Pause or resume schedules."""
        params = {"names": list(names), "paused": paused, "next_run_at": next_run_at}
        with self._conn() as conn:
            return conn.execute(self._msql["schedule_pause"], params).rowcount

    def schedule_fire(self, firings: Sequence[ScheduleFiring]) -> list[bool]:
        """Each firing's compare-and-set and its jobs, in one transaction per firing."""
        applied: list[bool] = []
        q = self._msql
        for firing in firings:
            with self._conn() as conn, conn.transaction():
                if firing.advance is not None:
                    expected, following = firing.advance
                    params = {"name": firing.name, "expected": expected, "next": following}
                    ok = conn.execute(q["schedule_advance"], params).fetchone() is not None
                else:
                    ok = conn.execute(q["schedule_lock"], {"name": firing.name}).fetchone() is not None
                applied.append(ok)
                if not ok or not firing.jobs:
                    continue
                jobs = [job for _, job in firing.jobs]
                ticks = [float(tick) for tick, _ in firing.jobs]
                conn.execute(q["insert_jobs"], _job_arrays(jobs, firing.name, ticks))
                conn.execute(
                    q["schedule_ran"],
                    {"name": firing.name, "last_run_at": ticks[-1], "last_job_id": jobs[-1].id},
                )
        return applied

    # -- failure alerts ------------------------------------------------------------------
    def alert_save(self, specs: Sequence[AlertSpec]) -> None:
        """Create or update alerts (``last_fired_at`` is kept)."""
        with self._conn() as conn, conn.transaction():
            for spec in specs:
                conn.execute(self._msql["alert_save"], kit.spec_params(spec))

    def alert_list(self) -> list[AlertRecord]:
        """Every alert, by name."""
        rows = self._execute(self._msql["alert_list"], {})
        return [kit.alert_record(kit.by_position(kit.ALERT_FIELDS, r)) for r in rows]

    def alert_delete(self, names: Sequence[str]) -> int:
        """Delete alerts by name."""
        with self._conn() as conn:
            return conn.execute(self._msql["alert_delete"], {"names": list(names)}).rowcount

    def failures_since(self, since: float, queue: str | None = None, limit: int = 20) -> FailureCount:
        """Failed jobs that finished at or after ``since``: how many, and the newest ids."""
        params = {"since": float(since), "queue": queue, "limit": limit}
        count, ids = self._execute(self._msql["failures_since"], params)[0]
        return FailureCount(int(count), tuple(ids))

    def alert_fire(self, firings: Sequence[AlertFiring]) -> list[bool]:
        """Stamp each alert that is quiet since its window began, and store its job."""
        applied: list[bool] = []
        for firing in firings:
            with self._conn() as conn, conn.transaction():
                params = {
                    "name": firing.name,
                    "fired_at": float(firing.fired_at),
                    "quiet_since": float(firing.quiet_since),
                }
                ok = conn.execute(self._msql["alert_stamp"], params).fetchone() is not None
                applied.append(ok)
                if ok:
                    conn.execute(self._msql["insert_jobs"], _job_arrays([firing.job], None, [None]))
        return applied


def _job_arrays(
    jobs: Sequence[NewJob], schedule: str | None, ticks: Sequence[float | None]
) -> dict[str, Any]:
    return {
        "ids": [j.id for j in jobs],
        "tasks": [j.task for j in jobs],
        "queues": [j.queue for j in jobs],
        "payloads": [j.payload for j in jobs],
        "priorities": [j.priority for j in jobs],
        "max_attempts": [j.max_attempts for j in jobs],
        "on_completes": [j.on_complete for j in jobs],
        "groups": [j.group for j in jobs],
        "schedules": [schedule for _ in jobs],
        "scheduled_fors": list(ticks),
        "trace_contexts": [j.trace_context for j in jobs],
    }
