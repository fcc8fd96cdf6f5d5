"""SQLite: throughput per minute, the observability read beside the engine's job life cycle.

A mixin of :class:`~conveyor.backends.sqlite.SQLiteBackend` (which supplies ``_conn``):
one statement along the (state, finished_at) index, on the machine's clock.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from . import sqlfile
from .throughput import DEFAULT_MINUTES, Throughput, check_minutes, series, window_since

SQL = sqlfile.load("sqlite.sql")


class SQLiteObservability:
    """``throughput`` on SQLite (mixed into SQLiteBackend)."""

    if TYPE_CHECKING:  # supplied by SQLiteBackend

        def _conn(self) -> sqlite3.Connection: ...

    def throughput(self, minutes: int = DEFAULT_MINUTES, queue: str | None = None) -> Throughput:
        """Jobs completed and failed per minute over the last ``minutes``, from their ``finished_at``."""
        minutes = check_minutes(minutes)
        now = time.time()
        params = {"since": window_since(now, minutes), "queue": queue}
        rows = self._conn().execute(SQL["throughput"], params).fetchall()
        return series(now, minutes, queue, [(minute, state, n) for minute, state, n in rows])
