"""The reaper: returns jobs whose lease lapsed, whoever held them, to the queue."""

from __future__ import annotations

import logging

from ...backends.base import Backend
from .base import PeriodicService

log = logging.getLogger("conveyor.worker")


class Reaper(PeriodicService):
    """Every ``interval`` seconds, requeues jobs with lapsed leases (or fails those out of attempts).

    Any number of workers may run one: ``reap_expired`` takes each lapsed job once,
    inside the backend. A run reaps ``batch_size`` jobs at a time, at most
    ``max_batches`` times, so a huge backlog is worked off over several runs
    instead of holding the backend in one.
    """

    name = "reaper"
    batch_size: int

    def __init__(
        self, backend: Backend, interval: float, *, batch_size: int = 500, max_batches: int = 20
    ) -> None:
        super().__init__(interval, batch_size=batch_size)
        self.backend = backend
        self.max_batches = max_batches

    def run_once(self) -> None:
        """Reap until a batch comes back short or ``max_batches`` batches are done."""
        for _ in range(self.max_batches):
            result = self.backend.reap_expired(self.batch_size)
            if result.requeued or result.failed:
                log.warning(
                    "reaper: %d job(s) with lapsed leases requeued, %d failed (attempts spent)",
                    result.requeued,
                    result.failed,
                )
            if result.requeued + result.failed < self.batch_size:
                return
