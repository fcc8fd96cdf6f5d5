"""The scheduler: turns each due schedule tick into exactly one job, with any number of workers.

Every worker runs one. A run reads the schedules, and for each due one asks
:func:`conveyor.schedules.plan_firing` which ticks to enqueue, then stores them with
the backend's compare-and-set on the schedule's ``next_run_at`` (``schedule_fire``):
of several workers racing for a tick, one moves it on and stores its job in the same
transaction or script; the others find it moved, re-read and see nothing due.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ...backends.base import ScheduledJob, ScheduleFiring, ScheduleRecord
from ...errors import UnknownTask
from ...schedules import Timing, plan_firing
from .base import PeriodicService

if TYPE_CHECKING:
    from ...app import App

log = logging.getLogger("conveyor.worker")

#: Times one run re-reads a schedule after losing its compare-and-set to another worker.
MAX_RACES = 5


class Scheduler(PeriodicService):
    """Every ``interval`` seconds, enqueues the due ticks of every schedule (see module docstring).

    Its first run also saves the schedules declared in the App's code. A tick that fell
    due while this scheduler was looking (after its previous run, or since it started) is
    late and runs; an older one was missed (no scheduler ran) and follows the schedule's
    ``missed`` policy.
    """

    name = "scheduler"

    def __init__(self, app: App, interval: float) -> None:
        super().__init__(interval)
        self.app = app
        self.backend = app.backend
        self._saved = False
        self._last_look: float | None = None
        self._unknown_logged: set[str] = set()
        #: Jobs this scheduler stored, for tests and logs.
        self.enqueued = 0

    def start(self) -> None:
        """Start the loop; ticks due from now on are late, not missed, for this scheduler."""
        if self._last_look is None:
            self._last_look = time.monotonic()
        super().start()

    def run_once(self) -> None:
        """Save the declared schedules (first run), then fire every due schedule."""
        if not self._saved:
            self.app.save_schedules()
            self._saved = True
        looked, mono = self._last_look, time.monotonic()
        self._last_look = mono
        now = self.backend.now()
        late_since = now - (mono - looked) if looked is not None else now - self.interval
        for record in self.backend.schedule_list():
            if not record.paused and record.next_run_at <= now:
                self._fire(record, now, late_since)

    def _fire(self, record: ScheduleRecord, now: float, late_since: float) -> None:
        spec = record.spec
        timing = Timing(spec.cron, spec.every, spec.tz)
        for _ in range(MAX_RACES):
            plan = plan_firing(timing, record.next_run_at, now, late_since, spec.missed)
            if plan is None:
                return
            try:
                jobs = tuple(ScheduledJob(tick, self.app.prepare_scheduled(spec)) for tick in plan.ticks)
            except UnknownTask:
                if spec.name not in self._unknown_logged:
                    self._unknown_logged.add(spec.name)
                    log.warning(
                        "schedule %s: task %s is not in this worker's app; a worker that has it runs it",
                        spec.name,
                        spec.task,
                    )
                return
            firing = ScheduleFiring(spec.name, (record.next_run_at, plan.next_run_at), jobs)
            if self.backend.schedule_fire([firing])[0]:
                self.enqueued += len(jobs)
                if len(plan.ticks) > 1 or not plan.ticks:
                    log.info("schedule %s: %d tick(s) enqueued after a gap", spec.name, len(jobs))
                return
            # Another worker moved the schedule on first: look again at what it left due.
            found = next((r for r in self.backend.schedule_list() if r.spec.name == spec.name), None)
            if found is None or found.paused:
                return
            record = found
