"""The base of a worker's services: a named loop with an interval, start/stop and a run counter."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import ClassVar

from ...errors import ConfigurationError
from ..recovery import RetryDelay, error_line

log = logging.getLogger("conveyor.worker")


class PeriodicService(ABC):
    """Runs :meth:`run_once` every ``interval`` seconds on its own thread until stopped.

    A subclass names itself (``name``) and implements ``run_once``; a service that
    works through rows in chunks takes a ``batch_size``. A failing run logs one line
    and is retried after a growing delay (never longer than the interval), never a
    traceback storm. ``runs`` counts the loop's successful runs, so a test waits for
    "ran once" with :meth:`wait_for_runs` instead of sleeping.
    """

    #: Names the service's thread and its log lines.
    name: ClassVar[str]

    def __init__(self, interval: float, *, batch_size: int | None = None) -> None:
        if interval <= 0:
            raise ConfigurationError(f"{self.name} interval must be > 0 seconds, got {interval!r}")
        if batch_size is not None and batch_size < 1:
            raise ConfigurationError(f"{self.name} batch_size must be >= 1, got {batch_size!r}")
        self.interval = interval
        self.batch_size = batch_size
        #: Successful runs of the loop since this service was made.
        self.runs = 0
        self._runs_changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} every {self.interval:g}s, {self.runs} run(s)>"

    @abstractmethod
    def run_once(self) -> None:
        """One pass of this service's work (the loop calls it; so may a caller that needs it now)."""

    # -- life cycle ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the loop thread (a no-op while it runs); its first run is one interval away."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"conveyor-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to end after its current run, without waiting for it."""
        self._stop.set()

    def join(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` seconds for the loop to end."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for its current run."""
        self.request_stop()
        self.join(timeout)

    # -- the test hook ---------------------------------------------------------------
    def wait_for_runs(self, count: int, timeout: float | None = None) -> bool:
        """Block until the loop has run successfully ``count`` times in all; False on timeout."""
        with self._runs_changed:
            return self._runs_changed.wait_for(lambda: self.runs >= count, timeout)

    # -- the loop --------------------------------------------------------------------
    def _loop(self) -> None:
        # Retries wait at most one interval, and never less than 1 s for a very short one.
        retry = RetryDelay(cap=self.interval if self.interval > 0.1 else 1.0)
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - logged; the next run retries
                wait = retry.failed()
                log.warning("%s failed (%s); retrying in %.1fs", self.name, error_line(exc), wait)
                continue
            retry.succeeded()
            wait = self.interval
            with self._runs_changed:
                self.runs += 1
                self._runs_changed.notify_all()
