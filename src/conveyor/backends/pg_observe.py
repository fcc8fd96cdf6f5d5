"""PostgreSQL's observability operations: the registry of live workers, and progress.

A mixin of :class:`~conveyor.backends.postgres.PostgresBackend`, kept in a module of
its own so the engine's main module stays about its job life cycle. Each operation
is one statement of postgres.sql on the database clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, LiteralString

from psycopg import sql

from . import kit
from .base import ProgressUpdate, WorkerBeat, WorkerRecord
from .pg_schema import Queries


class PostgresObservability:
    """``workers_beat``, ``workers_remove``, ``workers_live`` and ``jobs_progress`` on PostgreSQL."""

    queries: Queries

    def _execute(self, query: LiteralString | sql.Composed, params: dict[str, Any]) -> list[Any]:
        raise NotImplementedError  # PostgresBackend's

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
