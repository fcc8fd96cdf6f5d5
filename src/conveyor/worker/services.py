"""Small background services of a worker: a periodic loop with start/stop, and its users."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("conveyor.worker")


class Backoff:
    """Retry delays for a failing backend call: 0.1 s doubling to ``cap``."""

    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.current = 0.0

    def failed(self) -> float:
        """The delay to wait after one more failure."""
        self.current = self.first if self.current == 0 else min(self.cap, self.current * 2)
        return self.current

    def succeeded(self) -> None:
        """Reset after a success."""
        self.current = 0.0


def describe(exc: BaseException) -> str:
    """One line for a log: the error's class and its first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class PeriodicService:
    """Runs ``step`` every ``interval`` seconds on its own thread until stopped.

    A failing step logs one line and is retried with backoff, never a traceback storm.
    """

    def __init__(self, name: str, interval: float, step: Callable[[], None]) -> None:
        self.name = name
        self.interval = interval
        self.step = step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name=f"conveyor-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for its current step."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _main(self) -> None:
        backoff = Backoff(cap=self.interval if self.interval > 0.1 else 1.0)
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - logged; the next run retries
                wait = backoff.failed()
                log.warning("%s failed (%s); retrying in %.1fs", self.name, describe(exc), wait)
            else:
                backoff.succeeded()
                wait = self.interval
