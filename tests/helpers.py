"""Test helpers: a worker on a thread, and waiting on a condition instead of sleeping blindly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import conveyor


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


@contextmanager
def running_worker(app: conveyor.App, **options: Any) -> Iterator[conveyor.Worker]:
    """A worker running on a background thread for the duration of the block."""
    options.setdefault("install_signal_handlers", False)
    options.setdefault("idle_wait", 0.05)
    worker = conveyor.Worker(app, **options)
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


def final_state(job: conveyor.Job, timeout: float = 10.0) -> str:
    """Wait for ``job`` to reach a final state and return it."""
    wait_for(lambda: job.refresh().state in ("completed", "failed", "cancelled"), timeout)
    return job.state
