"""The app the schedule and alert process tests run in worker subprocesses (URL from CONVEYOR_URL)."""

from __future__ import annotations

import conveyor

# Short service intervals keep the tests short; the defaults are 1 s, 10 s and 5 s.
app = conveyor.App(scheduler_interval=0.25, alerter_interval=0.25, pruner_interval=1.0)


@app.periodic(every=1)
def tick() -> None:
    """Runs once per second, as long as any worker runs."""


@app.task(max_attempts=1)
def boom() -> None:
    """Fails for good at once: what the alert test counts."""
    raise RuntimeError("boom")
