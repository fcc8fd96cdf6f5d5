"""PostgreSQL: the flow-control operations of the Backend protocol (queue settings and usage).

A mixin of :class:`~conveyor.backends.postgres.PostgresBackend` (which supplies ``_conn``
and ``queries``), kept in a module of its own so the engine's main module stays about
its job life cycle. The claim applies the settings in SQL (the claim block of postgres.sql).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from . import flow, kit
from .flow import GroupUsage, QueueSettings, QueueUpdate, QueueUsage
from .pg_schema import Queries, first
from .pg_session import Conn


def settings_fields(row: tuple[Any, ...]) -> dict[str, Any]:
    """A queue settings row (name, concurrency, rate_limit, group_concurrency, group_rate_limit, paused)."""
    return kit.by_position(("name", *flow.SETTING_FIELDS[:-1], "paused"), row)


class PostgresFlow:
    """``queue_update`` and ``queue_usage`` on PostgreSQL (mixed into PostgresBackend)."""

    if TYPE_CHECKING:  # supplied by PostgresBackend
        queries: Queries

        def _conn(self) -> AbstractContextManager[Conn]: ...

    # -- flow control --------------------------------------------------------------------
    def queue_update(self, update: QueueUpdate) -> QueueSettings:
        """Apply a checked change under the queue row's lock (one transaction)."""
        with self._conn() as conn, conn.transaction():
            conn.execute(self.queries["lock_queue"], {"name": update.name})
            row = conn.execute(self.queries["locked_queue"], {"name": update.name}).fetchone()
            current = None if row is None else flow.settings_from_row(settings_fields(row))
            settings = update.applied_to(current)
            stored = settings.stored()
            for name, rate in (("rate", settings.rate_limit), ("group_rate", settings.group_rate_limit)):
                stored[f"{name}_count"] = None if rate is None else rate.count
                stored[f"{name}_period"] = None if rate is None else rate.period
            stored["paused"] = settings.paused
            conn.execute(self.queries["save_queue"], stored)
        return settings

    def queue_usage(self, names: Sequence[str] | None = None) -> list[QueueUsage]:
        """Managed queues against their limits, by name."""
        usage: list[QueueUsage] = []
        with self._conn() as conn:
            if names is None:
                rows = conn.execute(self.queries["all_queue_settings"]).fetchall()
            else:
                rows = conn.execute(self.queries["queue_settings"], {"names": list(names)}).fetchall()
            for row in rows:
                settings = flow.settings_from_row(settings_fields(row))
                params = {"queue": settings.name}
                running = first(conn.execute(self.queries["queue_running"], params).fetchone())
                started = 0
                if settings.rate_limit is not None:
                    period = {**params, "period": settings.rate_limit.period}
                    started = first(conn.execute(self.queries["queue_started"], period).fetchone())
                top = conn.execute(self.queries["busiest_groups"], {**params, "limit": flow.BUSIEST_GROUPS})
                groups = tuple(GroupUsage(r[0], int(r[1]), int(r[2])) for r in top)
                usage.append(QueueUsage(settings, int(running), int(started), groups))
        return usage
