"""The registry service: a worker lists itself in the backend, renews by heartbeat, leaves cleanly."""

from __future__ import annotations

from collections.abc import Callable

from ...backends.base import Backend, WorkerBeat
from ...backends.kit import MISSED_BEATS_ALLOWED
from ..recovery import error_line
from .base import PeriodicService, log


class WorkerRegistry(PeriodicService):
    """Every ``interval`` seconds, tells the backend this worker is alive and what it runs.

    Registration happens at :meth:`start` (not one interval later); an entry expires
    after ``MISSED_BEATS_ALLOWED`` (three) intervals without a beat, so a worker that
    was killed drops off the list by itself, and :meth:`leave` takes a worker that
    stops cleanly off at once.
    """

    name = "registry"

    def __init__(self, backend: Backend, interval: float, describe: Callable[[], WorkerBeat]) -> None:
        super().__init__(interval)
        self.backend = backend
        self.describe = describe
        self.ttl = MISSED_BEATS_ALLOWED * interval

    def start(self) -> None:
        """Register now, then renew every interval (a failing first beat is retried by the loop)."""
        try:
            self.run_once()
        except Exception as exc:  # noqa: BLE001 - the loop retries; the worker still starts
            log.warning("registering the worker failed (%s); retrying", error_line(exc))
        super().start()

    def run_once(self) -> None:
        """Renew this worker's entry with what it runs now."""
        self.backend.workers_beat([self.describe()], self.ttl)

    def leave(self) -> None:
        """Take this worker off the list (a clean stop)."""
        self.backend.workers_remove([self.describe().id])
