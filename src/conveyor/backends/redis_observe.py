"""Redis: throughput per minute, the observability read beside the engine's job life cycle.

A mixin of :class:`~conveyor.backends.redis.RedisBackend` (which supplies ``_run``).
``throughput.lua`` reads the per-minute counters ``m:<minute>`` that ``finish.lua`` and
``reap.lua`` keep (one HINCRBY per queue and kind per script run, see docs/redis.md):
a window of N minutes is N small hashes, whatever the number of jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .redis_support import translate_errors
from .throughput import DEFAULT_MINUTES, Throughput, check_minutes, series


class RedisObservability:
    """``throughput`` on Redis (mixed into RedisBackend)."""

    if TYPE_CHECKING:  # supplied by RedisBackend
        server: str

        def _run(self, name: str, args: Sequence[Any], *, retry: bool = False) -> Any: ...

    @translate_errors
    def throughput(self, minutes: int = DEFAULT_MINUTES, queue: str | None = None) -> Throughput:
        """Jobs completed and failed per minute over the last ``minutes``, on the server's clock."""
        minutes = check_minutes(minutes)
        flat = self._run("throughput", [minutes, queue or ""], retry=True)
        now, first = float(flat[0]), int(flat[1])
        rows: list[tuple[int, str, int]] = []
        for i in range(minutes):
            rows.append((first + i, "completed", int(flat[2 + 2 * i])))
            rows.append((first + i, "failed", int(flat[3 + 2 * i])))
        return series(now, minutes, queue, rows)
