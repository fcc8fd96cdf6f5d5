"""Helpers for tests that run a real worker: a worker on a thread, and waiting on a condition.

They need no test framework: a failed wait raises ``AssertionError`` with what was
awaited, which pytest, unittest and plain scripts all report as a test failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..app import App
from ..job import Job
from ..states import FINAL_STATES
from ..worker import Worker


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy and return its value; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


@contextmanager
def running_worker(app: App, **options: Any) -> Iterator[Worker]:
    """A :class:`~conveyor.Worker` running on a background thread for the duration of the block.

    ``options`` are the Worker's keyword arguments; signal handlers stay uninstalled and
    the idle wait is short unless given. On exit the worker stops gracefully; an error
    raised by its run loop is raised again here, and a worker that does not stop within
    30 s is an AssertionError.
    """
    options.setdefault("install_signal_handlers", False)
    options.setdefault("idle_wait", 0.05)
    worker = Worker(app, **options)
    errors: list[BaseException] = []

    def main() -> None:
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=main, name="test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive(), "worker did not stop within 30s"
        if errors:
            raise errors[0]


def final_state(job: Job, timeout: float = 10.0) -> str:
    """Wait for ``job`` to reach a final state (completed, failed, cancelled) and return it."""
    wait_for(lambda: job.refresh().state in FINAL_STATES, timeout)
    return job.state
