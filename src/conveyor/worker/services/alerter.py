"""The alerter: POSTs a failure alert when too many jobs failed recently, at most once per window.

Every worker runs one. For each alert not fired within its window it counts the jobs
that entered ``failed`` in the window (``failures_since``, along the finished-time
index); past the threshold it asks the App for the notification (a signed
``conveyor.http`` job) and stores it with ``alert_fire``, which stamps the alert in
the same atomic step only if no other worker did since the window began.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...alerts import MAX_JOB_IDS
from ...backends.base import AlertFiring
from .base import PeriodicService

if TYPE_CHECKING:
    from ...app import App

log = logging.getLogger("conveyor.worker")


class Alerter(PeriodicService):
    """Every ``interval`` seconds, evaluates every stored alert (see module docstring)."""

    name = "alerter"

    def __init__(self, app: App, interval: float) -> None:
        super().__init__(interval)
        self.app = app
        self.backend = app.backend
        self._saved = False
        #: Notifications this alerter stored, for tests and logs.
        self.fired = 0

    def run_once(self) -> None:
        """Save the alerts declared in the App's code (first run), then evaluate every alert."""
        if not self._saved:
            self.app.save_alerts()
            self._saved = True
        records = self.backend.alert_list()
        if not records:
            return
        now = self.backend.now()
        firings: list[AlertFiring] = []
        for record in records:
            spec = record.spec
            if record.last_fired_at is not None and record.last_fired_at > now - spec.window:
                continue  # fired within this window already
            failures = self.backend.failures_since(now - spec.window, spec.queue, MAX_JOB_IDS)
            if failures.count >= spec.threshold:
                firings.append(self.app.prepare_alert(spec, failures, now))
        if not firings:
            return
        for firing, fired in zip(firings, self.backend.alert_fire(firings), strict=True):
            if fired:
                self.fired += 1
                log.warning("alert %s: threshold crossed; notification job %s", firing.name, firing.job.id)
