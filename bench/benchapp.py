"""The App benchmark workers import: a no-op task and a pickup-latency probe."""

from __future__ import annotations

import os
import time

import conveyor

app = conveyor.App(os.environ.get("CONVEYOR_URL"))


@app.task()
def noop() -> None:
    """Nothing: the cost measured is the queue's own."""


@app.task()
def pickup(sent_at: float) -> float:
    """Seconds from enqueue to start, measured on this machine's one clock."""
    return time.time() - sent_at
