"""The pruner: deletes finished jobs past their retention, with their attempt records, in batches.

Every worker runs one; any number may run at once (a batch deletes rows by primary
key, and a row another worker deletes first is simply not there). Each batch is its
own short transaction or script, so a prune of a million rows never holds a lock for
long and claims go on in between.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ...backends.base import Backend
from ...states import PURGEABLE, parse_state
from .base import PeriodicService

log = logging.getLogger("conveyor.worker")


class Pruner(PeriodicService):
    """Every ``interval`` seconds, deletes ``completed``/``cancelled``/``failed`` jobs older than
    their retention (``None``: kept), ``batch_size`` at a time, at most ``max_batches`` per run."""

    name = "pruner"
    batch_size: int

    def __init__(
        self,
        backend: Backend,
        retention: Mapping[str, float | None],
        interval: float,
        *,
        batch_size: int = 500,
        max_batches: int = 200,
    ) -> None:
        super().__init__(interval, batch_size=batch_size)
        self.backend = backend
        self.retention = dict(retention)
        self.max_batches = max_batches
        #: Jobs this pruner deleted, for tests and logs.
        self.pruned = 0

    def run_once(self) -> None:
        """Prune each state with a retention until a batch comes back short or the run's budget is spent."""
        now = self.backend.now()
        batches = 0
        for state, keep in self.retention.items():
            if keep is None:
                continue
            while batches < self.max_batches and not self._stop.is_set():
                batches += 1
                deleted = self.backend.purge([parse_state(state, PURGEABLE)], now - keep, self.batch_size)
                self.pruned += deleted
                if deleted < self.batch_size:
                    break
        if batches >= self.max_batches:
            log.info("pruner: %d batches this run; continuing next run", batches)
