"""``conveyor.Job``, the one job type users hold, and ``JobPage``, a page of them.

Enqueue returns a Job that knows its id and state; its stored fields load from the
backend on first access (or ``refresh()``). ``app.get``, ``app.jobs``, ``app.cancel``
and ``app.resubmit`` return Jobs already loaded.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .actions import new_action
from .backends.base import AttemptRecord, JobRecord
from .errors import JobFailed, JobNotFound
from .states import FINAL_STATES, State

if TYPE_CHECKING:
    from .app import App

#: With live finish wake-ups a waiter still reads its job this often: a safety net for a
#: change that sends none (a deleted job) and for a notice lost while a listener reconnects.
LIVE_RECHECK = 1.0


class Job:
    """A handle on one stored job. ``state`` and the stored fields are as of the last load."""

    __slots__ = ("_record", "app", "id", "state")

    def __init__(self, app: App, id: str, state: State, record: JobRecord | None = None) -> None:
        self.app = app
        self.id = id
        self.state: State = state
        self._record = record

    @classmethod
    def loaded(cls, app: App, record: JobRecord) -> Job:
        """A Job carrying what the backend returned about it."""
        return cls(app, record.id, record.state, record)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _stored(self) -> JobRecord:
        if self._record is None:
            self.refresh()
        assert self._record is not None
        return self._record

    def _load(self, record: JobRecord) -> Job:
        self._record = record
        self.state = record.state
        return self

    # -- the stored fields (loaded on first access) ------------------------------------------
    @property
    def status(self) -> State:
        """The state under its JSON name."""
        return self.state

    @property
    def task(self) -> str:
        """The task's name."""
        return self._stored().task

    @property
    def queue(self) -> str:
        """The queue the job waits in."""
        return self._stored().queue

    @property
    def args(self) -> list[Any]:
        """The positional arguments."""
        return self._stored().args

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments."""
        return self._stored().kwargs

    @property
    def attempt(self) -> int:
        """Attempts started so far, counting those before any resubmit."""
        return self._stored().attempt

    @property
    def max_attempts(self) -> int:
        """The attempt budget (of each submission: a resubmit restarts it)."""
        return self._stored().max_attempts

    @property
    def prior_attempts(self) -> int:
        """Attempts run before the latest resubmit: numbers go on from there, the budget restarts."""
        return self._stored().prior_attempts

    @property
    def priority(self) -> int:
        """Higher runs first."""
        return self._stored().priority

    @property
    def run_at(self) -> datetime:
        """When the job is (or was) due."""
        return self._stored().run_at

    @property
    def created_at(self) -> datetime:
        """When the job was stored."""
        return self._stored().created_at

    @property
    def started_at(self) -> datetime | None:
        """When its latest attempt started."""
        return self._stored().started_at

    @property
    def finished_at(self) -> datetime | None:
        """When it reached a final state."""
        return self._stored().finished_at

    @property
    def error(self) -> str | None:
        """The latest attempt's error."""
        return self._stored().error

    @property
    def traceback(self) -> str | None:
        """The latest attempt's traceback text."""
        return self._stored().traceback

    @property
    def key(self) -> str | None:
        """The idempotency key."""
        return self._stored().key

    @property
    def worker(self) -> str | None:
        """The worker that ran (or runs) the latest attempt."""
        return self._stored().worker

    @property
    def lease_expires_at(self) -> datetime | None:
        """When the running attempt's lease lapses unless renewed."""
        return self._stored().lease_expires_at

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked a running job to stop."""
        return self._stored().cancel_requested

    @property
    def on_complete(self) -> str | None:
        """The URL told of the outcome."""
        return self._stored().on_complete

    @property
    def group(self) -> str | None:
        """The job's group for flow control (fairness and group limits), or None."""
        return self._stored().group

    @property
    def schedule(self) -> str | None:
        """The name of the schedule that enqueued the job (None if none did)."""
        return self._stored().schedule

    @property
    def scheduled_for(self) -> datetime | None:
        """The schedule's tick this job ran for (None for jobs not enqueued by a schedule)."""
        return self._stored().scheduled_for

    @property
    def progress(self) -> dict[str, Any] | None:
        """``{"fraction", "message", "updated_at"}`` as the task last reported, or None."""
        return self._stored().progress

    @property
    def trace_id(self) -> str | None:
        """The OpenTelemetry trace the job was enqueued in (32 hex digits), or None."""
        return self._stored().trace_id

    @property
    def attempts(self) -> list[AttemptRecord]:
        """The audit trail: one record per attempt."""
        return self._stored().attempts

    def to_dict(self, *, with_attempts: bool = True) -> dict[str, Any]:
        """The JSON shape of ``GET /api/jobs/{id}`` (``status`` carries the state)."""
        return self._stored().to_dict(with_attempts=with_attempts)

    # -- actions -----------------------------------------------------------------------------
    def refresh(self) -> Job:
        """Reload the job from the backend; returns self (JobNotFound if it was deleted)."""
        record = self.app.backend.get(self.id)
        if record is None:
            raise JobNotFound(f"no job with id {self.id!r}")
        return self._load(record)

    def result(self, timeout: float | None = None, poll: float = 0.05) -> Any:
        """Wait for the job to finish and return its result.

        Raises ``conveyor.JobFailed`` if it failed or was cancelled, and
        ``TimeoutError`` if it has not finished within ``timeout`` seconds. Between
        reads it waits for the backend's finish wake-up (PostgreSQL NOTIFY, a Redis
        message, memory's own); without one it polls, 5 ms doubling up to ``poll``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        woken = threading.Event()
        with self.app.backend.watch_finishes([self.id], woken.set) as watch:
            pause = min(0.005, poll)
            while True:
                woken.clear()  # before the read: a finish after it sets the event again
                if self._finished():
                    break
                left = LIVE_RECHECK if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {self.id} still {self.state} after {timeout}s")
                if watch.live:
                    woken.wait(min(LIVE_RECHECK, left))
                else:
                    woken.wait(min(pause, left))
                    pause = min(pause * 2, poll)
        return self._outcome()

    def _finished(self) -> bool:
        try:
            self.refresh()
        except JobNotFound:
            raise JobFailed(self.id, "deleted", "the job was deleted", None) from None
        return self.state in FINAL_STATES

    def _outcome(self) -> Any:
        record = self._stored()
        if record.state != "completed":
            raise JobFailed(self.id, record.state, record.error, record.traceback)
        return record.result

    def cancel(self) -> Job:
        """Cancel the job (as ``App.cancel``, which records it in the action trail); returns self."""
        record = self.app.backend.cancel(self.id)
        self.app.record_action(new_action(self.app.actor, "cancel", (self.id,), 1))
        return self._load(record)

    # -- awaited (nothing here blocks the event loop) -------------------------------------------
    async def arefresh(self) -> Job:
        """``refresh``, awaited."""
        record = await self.app.async_backend.get(self.id)
        if record is None:
            raise JobNotFound(f"no job with id {self.id!r}")
        return self._load(record)

    async def aresult(self, timeout: float | None = None, poll: float = 0.1) -> Any:
        """``result``, awaited: the return value, ``JobFailed``, or ``TimeoutError``.

        Between reads it awaits the backend's finish wake-up, handed to the loop from
        the engine's listener thread (PostgreSQL NOTIFY, a Redis message, memory's
        own), or without one a pause on the loop (5 ms doubling up to ``poll``); a
        waiting handler costs the loop nothing and other coroutines keep running.
        """
        import asyncio  # the first await imports it, not import conveyor

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        woken = asyncio.Event()

        def wake() -> None:

            loop.call_soon_threadsafe(woken.set)

        with self.app.backend.watch_finishes([self.id], wake) as watch:
            pause = min(0.005, poll)
            while True:
                woken.clear()  # before the read: a finish after it sets the event again
                try:
                    await self.arefresh()
                except JobNotFound:
                    raise JobFailed(self.id, "deleted", "the job was deleted", None) from None
                if self.state in FINAL_STATES:
                    break
                left = LIVE_RECHECK if deadline is None else deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"job {self.id} still {self.state} after {timeout}s")
                wait = min(LIVE_RECHECK if watch.live else pause, left)
                if not watch.live:
                    pause = min(pause * 2, poll)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), wait)
        return self._outcome()

    async def acancel(self) -> Job:
        """``cancel``, awaited; returns self refreshed."""
        import asyncio  # the first await imports it, not import conveyor

        record = await self.app.async_backend.cancel(self.id)
        action = new_action(self.app.actor, "cancel", (self.id,), 1)
        await asyncio.to_thread(self.app.record_action, action)
        return self._load(record)


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing (newest first) and the total that matched; iterate it for the Jobs."""

    items: list[Job]
    total: int

    def __iter__(self) -> Iterator[Job]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Job:
        return self.items[index]
