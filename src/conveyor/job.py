"""The Job handle a producer holds: id, last known state, refresh, result, cancel."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .backends.base import JobRecord
from .errors import JobFailed, JobNotFound
from .states import FINAL_STATES, State

if TYPE_CHECKING:
    from .app import App


class Job:
    """A handle on one stored job. ``state`` is as of the last refresh."""

    __slots__ = ("_record", "app", "id", "state")

    def __init__(self, app: App, id: str, state: State, record: JobRecord | None = None) -> None:
        self.app = app
        self.id = id
        self.state: State = state
        self._record = record

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def record(self) -> JobRecord:
        """Everything stored about the job (fetched if not yet loaded)."""
        if self._record is None:
            self.refresh()
        assert self._record is not None
        return self._record

    def refresh(self) -> Job:
        """Reload the job from the backend; returns self."""
        self._record = self.app.get(self.id)
        self.state = self._record.state
        return self

    def result(self, timeout: float | None = None, poll: float = 0.05) -> Any:
        """Wait for the job to finish and return its result.

        Raises ``conveyor.JobFailed`` if it failed or was cancelled, and
        ``TimeoutError`` if it has not finished within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(0.005, poll)
        while True:
            try:
                self.refresh()
            except JobNotFound:
                raise JobFailed(self.id, "deleted", "the job was deleted", None) from None
            if self.state in FINAL_STATES:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {self.state} after {timeout}s")
            left = poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic()))
            time.sleep(min(delay, left))
            delay = min(delay * 2, poll)
        record = self.record
        if record.state != "completed":
            raise JobFailed(self.id, record.state, record.error, record.traceback)
        return record.result

    def cancel(self) -> Job:
        """Cancel the job (see ``App.cancel``); returns self refreshed."""
        self._record = self.app.backend.cancel(self.id)
        self.state = self._record.state
        return self
