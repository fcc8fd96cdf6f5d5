"""The progress service: stores what running tasks report through ``current_job().progress()``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...backends.base import Backend, ProgressUpdate
from ..attempt import Attempt
from .base import PeriodicService

#: Seconds between writes: a job's progress reaches the backend at most twice a second.
PROGRESS_INTERVAL = 0.5


class ProgressWriter(PeriodicService):
    """Every ``interval`` seconds, writes the latest progress of each running job that reported since.

    However often a task calls ``progress()``, its job gets at most one write per
    interval, all jobs in one backend call, fenced by each job's lease token.
    """

    name = "progress"

    def __init__(
        self, backend: Backend, held: Callable[[], Sequence[Attempt]], interval: float = PROGRESS_INTERVAL
    ) -> None:
        super().__init__(interval)
        self.backend = backend
        self.held = held
        #: Backend writes made, for tests of the coalescing.
        self.writes = 0

    def run_once(self) -> None:
        """Write the progress reported since the last run, in one call."""
        updates: list[ProgressUpdate] = []
        marks: list[tuple[Attempt, int]] = []
        for attempt in self.held():
            context = attempt.context
            calls = context.progress_calls
            reported = context.reported_progress
            if calls == attempt.progress_written or reported is None or attempt.decided:
                continue
            fraction, message, _at = reported
            updates.append(ProgressUpdate(attempt.job.id, attempt.job.lease_token, fraction, message))
            marks.append((attempt, calls))
        if not updates:
            return
        self.backend.jobs_progress(updates)
        self.writes += 1
        for attempt, calls in marks:
            attempt.progress_written = calls
