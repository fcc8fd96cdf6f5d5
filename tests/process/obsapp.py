"""The App the observability tests run in real worker processes: jobs that succeed, retry, fail."""

from __future__ import annotations

import os
import time

import conveyor

app = conveyor.App(os.environ["CONVEYOR_URL"], lease=2.0, reaper_interval=0.5)


@app.task(queue="obs")
def ok(n: int, secret: str = "") -> int:
    """Succeeds after a short sleep; ``secret`` must never reach a label or a log line."""
    time.sleep(0.01)
    return n


@app.task(queue="obs", max_attempts=3, backoff=conveyor.backoff.fixed(0))
def flaky(n: int) -> int:
    """Fails its first attempt, succeeds on the second."""
    if conveyor.current_job().attempt == 1:
        raise ConnectionError(f"transient failure of {n}")
    return n


@app.task(queue="batch")
def bad(n: int) -> None:
    """Fails for good at once."""
    raise conveyor.Permanent(f"bad input {n}")


@app.task(queue="obs")
def hold(path: str) -> None:
    """Runs until the file at ``path`` exists (the test's signal to finish), at most 60 s."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
