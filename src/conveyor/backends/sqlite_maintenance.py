"""SQLite: the schedule and alert operations of the Backend protocol, and the failure count.

A mixin of :class:`~conveyor.backends.sqlite.SQLiteBackend` (which supplies ``_conn`` and
``_write``): every firing is one ``BEGIN IMMEDIATE`` transaction holding the
compare-and-set and the jobs it stores, so a crash keeps both or neither.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from . import kit, sqlfile, sqlite_flow
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

SQL = sqlfile.load("sqlite_maintenance.sql")


class SQLiteMaintenance:
    """Schedules, alerts and failure counts on SQLite (mixed into SQLiteBackend)."""

    if TYPE_CHECKING:  # supplied by SQLiteBackend

        def _conn(self) -> sqlite3.Connection: ...
        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

    # -- schedules ---------------------------------------------------------------------
    def schedule_save(self, specs: Sequence[ScheduleSpec]) -> None:
        """Create or update schedules (an unchanged timing keeps its next tick)."""
        with self._write() as conn:
            for spec in specs:
                conn.execute(SQL["schedule_save"], kit.spec_params(spec))

    def schedule_list(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        rows = self._conn().execute(SQL["schedule_list"]).fetchall()
        return [kit.schedule_record(kit.by_position(kit.SCHEDULE_FIELDS, r)) for r in rows]

    def schedule_delete(self, names: Sequence[str]) -> int:
        """Delete schedules by name."""
        with self._write() as conn:
            return sum(conn.execute(SQL["schedule_delete"], {"name": n}).rowcount for n in names)

    def schedule_pause(self, names: Sequence[str], paused: bool, next_run_at: float | None = None) -> int:
        """Pause or resume schedules."""
        params = {"paused": int(paused), "next_run_at": next_run_at}
        with self._write() as conn:
            return sum(conn.execute(SQL["schedule_pause"], {**params, "name": n}).rowcount for n in names)

    def schedule_fire(self, firings: Sequence[ScheduleFiring]) -> list[bool]:
        """Each firing's compare-and-set and its jobs, in one transaction."""
        applied: list[bool] = []
        with self._write() as conn:
            now = time.time()
            for firing in firings:
                if firing.advance is not None:
                    expected, following = firing.advance
                    params = {"name": firing.name, "expected": expected, "next": following}
                    ok = conn.execute(SQL["schedule_advance"], params).rowcount == 1
                else:
                    ok = conn.execute(SQL["schedule_exists"], {"name": firing.name}).fetchone() is not None
                applied.append(ok)
                if not ok or not firing.jobs:
                    continue
                for tick, job in firing.jobs:
                    row = {**_job_row(conn, job, now), "schedule": firing.name, "scheduled_for": tick}
                    conn.execute(SQL["insert_scheduled_job"], row)
                last_tick, last_job = firing.jobs[-1]
                conn.execute(
                    SQL["schedule_ran"],
                    {"name": firing.name, "last_run_at": last_tick, "last_job_id": last_job.id},
                )
        return applied

    # -- failure alerts ------------------------------------------------------------------
    def alert_save(self, specs: Sequence[AlertSpec]) -> None:
        """Create or update alerts (``last_fired_at`` is kept)."""
        with self._write() as conn:
            for spec in specs:
                conn.execute(SQL["alert_save"], kit.spec_params(spec))

    def alert_list(self) -> list[AlertRecord]:
        """Every alert, by name."""
        rows = self._conn().execute(SQL["alert_list"]).fetchall()
        return [kit.alert_record(kit.by_position(kit.ALERT_FIELDS, r)) for r in rows]

    def alert_delete(self, names: Sequence[str]) -> int:
        """Delete alerts by name."""
        with self._write() as conn:
            return sum(conn.execute(SQL["alert_delete"], {"name": n}).rowcount for n in names)

    def failures_since(self, since: float, queue: str | None = None, limit: int = 20) -> FailureCount:
        """Failed jobs that finished at or after ``since``: how many, and the newest ids."""
        conn = self._conn()
        params = {"since": since, "queue": queue, "limit": limit}
        count = int(conn.execute(SQL["failures_count"], params).fetchone()[0])
        ids = tuple(r[0] for r in conn.execute(SQL["failures_newest"], params)) if count else ()
        return FailureCount(count, ids)

    def alert_fire(self, firings: Sequence[AlertFiring]) -> list[bool]:
        """Stamp each alert that is quiet since its window began, and store its job."""
        applied: list[bool] = []
        with self._write() as conn:
            for firing in firings:
                params = {"name": firing.name, "fired_at": firing.fired_at, "quiet_since": firing.quiet_since}
                ok = conn.execute(SQL["alert_stamp"], params).rowcount == 1
                applied.append(ok)
                if ok:
                    row = {**_job_row(conn, firing.job, time.time()), "schedule": None, "scheduled_for": None}
                    conn.execute(SQL["insert_scheduled_job"], row)
        return applied


def _job_row(conn: sqlite3.Connection, job: NewJob, now: float) -> dict[str, object]:
    """The row of a maintenance job; a grouped one takes its fair rank as enqueue gives it (flow control)."""
    return {
        "group_key": job.group,
        "fair_rank": 0 if job.group is None else sqlite_flow.rank(conn, job.queue, job.group),
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "payload": job.payload,
        "priority": job.priority,
        "run_at": kit.due_time(job, now),
        "now": now,
        "max_attempts": job.max_attempts,
        "on_complete": job.on_complete,
        "trace_context": job.trace_context,
    }
