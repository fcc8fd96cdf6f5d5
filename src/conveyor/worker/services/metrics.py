"""The metrics service: counts queued starts, samples the busy slots, writes a child's snapshot."""

from __future__ import annotations

from collections.abc import Callable

from ..metrics import WorkerMetrics
from .base import PeriodicService


class MetricsService(PeriodicService):
    """Every ``interval`` seconds, flushes the starts the executor queued and sets the busy gauge.

    Outcomes are counted by the completer as it writes them; this service covers
    what has no outcome yet (a long job's start, the slots busy right now). In a
    child of ``--processes`` (``run_dir`` set) it also writes the snapshot its
    supervisor serves; the Worker runs it once more after its last write.
    """

    name = "metrics"

    def __init__(
        self,
        metrics: WorkerMetrics,
        busy: Callable[[], int],
        interval: float = 1.0,
        run_dir: str | None = None,
    ) -> None:
        super().__init__(interval)
        self.metrics = metrics
        self.busy = busy
        self.run_dir = run_dir

    def run_once(self) -> None:
        """Count the queued starts, sample how many jobs run now, write the snapshot if supervised."""
        self.metrics.flush_starts()
        self.metrics.set_busy(self.busy())
        if self.run_dir is not None:
            self.metrics.write_snapshot(self.run_dir)
