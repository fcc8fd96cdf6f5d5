"""PostgreSQL's observability operations: the registry of live workers, progress, gauges, throughput.

A mixin of :class:`~conveyor.backends.postgres.PostgresBackend`, kept in a module of
its own so the engine's main module stays about its job life cycle. Each operation
is one statement of postgres.sql on the database clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, LiteralString

from psycopg import sql

from ..states import ALL_STATES
from . import kit
from .base import Gauges, ProgressUpdate, WorkerBeat, WorkerRecord
from .pg_schema import Queries
from .throughput import DEFAULT_MINUTES, Throughput, check_minutes, series

#: Below this many rows (the planner's count) every state is counted exactly at each scrape.
EXACT_COUNT_ROWS = 100_000
#: The states whose counts come from statistics on a larger table.
ESTIMATED_STATES = frozenset({"completed", "cancelled"})


class PostgresObservability:
    """The worker registry, progress, ``queue_gauges`` and ``throughput`` on PostgreSQL."""

    if TYPE_CHECKING:  # supplied by PostgresBackend
        queries: Queries
        schema: str

        def _execute(self, query: LiteralString | sql.Composed, params: dict[str, Any]) -> list[Any]: ...

    def workers_beat(self, beats: Sequence[WorkerBeat], ttl_seconds: float) -> None:
        """Register or renew workers until ``ttl_seconds`` from the database's now."""
        if not beats:
            return
        params = {
            "ids": [b.id for b in beats],
            "infos": [kit.worker_info(b) for b in beats],
            "ttl": float(ttl_seconds),
        }
        self._execute(self.queries["workers_beat"], params)

    def workers_remove(self, worker_ids: Sequence[str]) -> None:
        """Take workers off the list."""
        if worker_ids:
            self._execute(self.queries["workers_remove"], {"ids": list(worker_ids)})

    def workers_live(self) -> list[WorkerRecord]:
        """Workers whose beat has not expired, oldest first."""
        rows = self._execute(self.queries["workers_live"], {})
        records = [kit.worker_record(info, seen) for info, seen in rows]
        return sorted(records, key=lambda r: (r.beat.started_at, r.beat.id))

    def jobs_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        """Store progress on the jobs whose lease each update still holds, in one statement."""
        if not updates:
            return
        params = {
            "ids": [u.job_id for u in updates],
            "tokens": [u.lease_token for u in updates],
            "fractions": [u.fraction for u in updates],
            "messages": [u.message for u in updates],
        }
        self._execute(self.queries["jobs_progress"], params)

    def queue_gauges(self) -> Gauges:
        """Counts by queue and state, and each queue's oldest due pending job, for /metrics.

        Waiting, running and failed jobs are counted exactly (partial indexes keep that
        cheap). Completed and cancelled jobs too while the table has under
        :data:`EXACT_COUNT_ROWS` rows; beyond that they are estimated from the
        (queue, state) statistics ANALYZE keeps, so a scrape never counts a million
        finished rows one by one.
        """
        (rows,) = self._execute(self.queries["gauge_table_rows"], {"schema": self.schema})[0]
        rows = float(rows)
        estimates = None
        if rows >= EXACT_COUNT_ROWS:
            estimates = self._estimated_finished(rows)
        exact = estimates is None
        rows_read = self._execute(self.queries["gauge_exact_counts"], {})
        if exact:
            rows_read += self._execute(self.queries["gauge_finished_counts"], {})
        groups = [(queue, state, int(n)) for queue, state, n in rows_read]
        groups += estimates or []
        waiting = sorted({queue for queue, state, n in groups if state == "pending" and n})
        oldest = self._execute(self.queries["gauge_oldest_pending"], {"queues": waiting}) if waiting else []
        return kit.gauges_from(groups, oldest, frozenset() if exact else ESTIMATED_STATES)

    def throughput(self, minutes: int = DEFAULT_MINUTES, queue: str | None = None) -> Throughput:
        """Jobs completed and failed per minute over the last ``minutes``, on the database clock."""
        minutes = check_minutes(minutes)
        rows = self._execute(self.queries["throughput"], {"minutes": minutes, "queue": queue})
        now = float(rows[0][0])
        return series(now, minutes, queue, [(m, state, n) for _, m, state, n in rows if m is not None])

    def _estimated_finished(self, rows: float) -> list[tuple[str, str, int]] | None:
        """Completed and cancelled counts per queue from the statistics; None before the first ANALYZE."""
        found = self._execute(self.queries["gauge_estimates"], {"schema": self.schema})
        if not found or found[0][0] is None:
            return None
        pairs, freqs = found[0]
        return [
            (queue, state, round(freq * rows))
            for (queue, state), freq in zip(pairs, freqs, strict=True)
            if state in ESTIMATED_STATES and state in ALL_STATES
        ]
