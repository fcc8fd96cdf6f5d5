"""The metrics service: counts queued starts and samples the busy slots once a second."""

from __future__ import annotations

from collections.abc import Callable

from ..metrics import WorkerMetrics
from .base import PeriodicService


class MetricsService(PeriodicService):
    """Every ``interval`` seconds, flushes the starts the executor queued and sets the busy gauge.

    Outcomes are counted by the completer as it writes them; this service covers
    what has no outcome yet (a long job's start, the slots busy right now).
    """

    name = "metrics"

    def __init__(self, metrics: WorkerMetrics, busy: Callable[[], int], interval: float = 1.0) -> None:
        super().__init__(interval)
        self.metrics = metrics
        self.busy = busy

    def run_once(self) -> None:
        """Count the queued starts and sample how many jobs run now."""
        self.metrics.flush_starts()
        self.metrics.set_busy(self.busy())
