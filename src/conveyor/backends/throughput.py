"""Throughput per minute: what the engines count and the rules they share.

``Backend.throughput(minutes, queue)`` answers, for each of the last ``minutes``
minutes on the backend's clock (the current, partial minute last), how many jobs
*completed* and how many *failed* in it. A job counts once, in the minute its
``finished_at`` falls in, when it enters its final state:

- ``completed``: jobs that finished successfully.
- ``failed``: jobs that entered ``failed`` for good (attempts spent, a permanent
  error, a worker lost on the last attempt). A failed attempt that is retried is
  not a failure here: the job may still complete, and counting it would make one
  flaky job look like several failures. This is the count failure alerts use
  (``failures_since``), so the chart and an alert agree.

Minutes are whole minutes of POSIX time (``start`` a multiple of 60), so every
engine buckets alike. The SQL engines and memory:// read the jobs' own
``finished_at`` along the (state, finished_at) index, so a job deleted, purged or
resubmitted since leaves its minute; Redis counts as jobs finish (one counter hash
per minute, see docs/redis.md) and keeps those counts whatever happens to the job
later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidWindow

#: The longest window ``throughput`` reads: a day of minutes (Redis keeps its counters as long).
MAX_MINUTES = 1440
#: The window the dashboard and ``GET /api/throughput`` read unless told otherwise.
DEFAULT_MINUTES = 60
MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """One minute of the window: when it starts (POSIX seconds) and the jobs that ended in it."""

    start: float
    completed: int
    failed: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one entry of ``GET /api/throughput``."""
        return {"start": _iso(self.start), "completed": self.completed, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class Throughput:
    """Completed and failed jobs per minute over a window, oldest minute first.

    Every minute of the window is present (zeros where nothing ended); ``now`` is the
    backend's clock when it was read, inside the last minute.
    """

    minutes: tuple[MinuteCounts, ...]
    queue: str | None
    now: float

    @property
    def completed(self) -> int:
        """Jobs completed over the whole window."""
        return sum(m.completed for m in self.minutes)

    @property
    def failed(self) -> int:
        """Jobs failed over the whole window."""
        return sum(m.failed for m in self.minutes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/throughput``."""
        return {
            "queue": self.queue,
            "now": _iso(self.now),
            "completed": self.completed,
            "failed": self.failed,
            "minutes": [m.to_dict() for m in self.minutes],
        }


def check_minutes(minutes: object) -> int:
    """``minutes`` as a whole number from 1 to :data:`MAX_MINUTES`; InvalidWindow otherwise."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_MINUTES:
        raise InvalidWindow(
            f"throughput minutes must be a whole number from 1 to {MAX_MINUTES}, got {minutes!r}"
        )
    return minutes


def minute_of(ts: float) -> int:
    """The minute a time falls in, counted from the epoch."""
    return math.floor(ts / MINUTE)


def first_minute(now: float, minutes: int) -> int:
    """The window's first minute: ``minutes`` whole minutes ending with the one ``now`` is in."""
    return minute_of(now) - minutes + 1


def window_since(now: float, minutes: int) -> float:
    """The POSIX time the window starts at (what an engine's query reads from)."""
    return first_minute(now, minutes) * MINUTE


def series(now: float, minutes: int, queue: str | None, counts: Iterable[tuple[int, str, int]]) -> Throughput:
    """The dense window from ``(minute, kind, n)`` rows; rows outside the window are ignored.

    ``kind`` is ``completed`` or ``failed`` (a job's state); other kinds are ignored too.
    """
    first = first_minute(now, minutes)
    completed = [0] * minutes
    failed = [0] * minutes
    for minute, kind, n in counts:
        i = int(minute) - first
        if 0 <= i < minutes:
            if kind == "completed":
                completed[i] += int(n)
            elif kind == "failed":
                failed[i] += int(n)
    entries = tuple(MinuteCounts((first + i) * MINUTE, completed[i], failed[i]) for i in range(minutes))
    return Throughput(entries, queue, now)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
