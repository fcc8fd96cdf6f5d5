"""Schedules: when a schedule's ticks fall, and which of them a scheduler run enqueues.

Pure computation, no I/O: the scheduler service (``worker/services/scheduler.py``)
asks :func:`plan_firing` what to store, and the backend stores it with a
compare-and-set on the schedule's ``next_run_at``, so each tick becomes one job
however many workers run the scheduler.

Timing is a cron expression (evaluated by `cronsim`, in the schedule's time zone,
so DST is handled the way cron does it: a time that does not exist on a
spring-forward day runs once, right after the gap; a time that occurs twice on a
fall-back day runs once, at its first occurrence) or ``every`` seconds (ticks at
whole multiples of the period since the Unix epoch, so ``every=60`` runs on the
minute, whatever the time zone).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .backends.base import MissedPolicy, ScheduleRecord, decode_payload
from .errors import InvalidSchedule

DEFAULT_TZ: Final = "UTC"
MISSED_POLICIES: Final[tuple[MissedPolicy, ...]] = ("latest", "skip")
#: The shortest and longest ``every``: a queue's schedule is not a sub-second timer.
MIN_EVERY: Final = 1.0
MAX_EVERY: Final = 366 * 86400.0
#: Ticks one run may enqueue for a schedule that is late (not missed): a bound, not a target.
MAX_LATE_TICKS: Final = 100


def check_timezone(tz: object) -> ZoneInfo:
    """The IANA zone named ``tz`` (``"UTC"``, ``"Europe/Berlin"``), or InvalidSchedule."""
    if not isinstance(tz, str) or not tz or tz != tz.strip():
        raise InvalidSchedule(f"unknown time zone {tz!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(
            f"unknown time zone {tz!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def check_cron(expr: object) -> str:
    """A cron expression cronsim accepts (five fields, e.g. ``"*/5 * * * *"``), or InvalidSchedule."""
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidSchedule(f"cron must be a cron expression such as '*/5 * * * *', got {expr!r}")
    from cronsim import CronSim, CronSimError  # on first use: an App without cron schedules never loads it

    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise InvalidSchedule(
            f"invalid cron expression {expr!r} ({exc}): use five fields, minute hour day month "
            "weekday, such as '*/5 * * * *' or '0 2 * * *'"
        ) from None
    return expr


def check_every(every: object) -> float:
    """``every`` as seconds (a number or a timedelta) from 1 s to 366 days, or InvalidSchedule."""
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise InvalidSchedule(f"every must be seconds or a timedelta, got {every!r}")
    if not MIN_EVERY <= seconds <= MAX_EVERY:
        raise InvalidSchedule(f"every must be from {MIN_EVERY:g} to {MAX_EVERY:.0f} seconds, got {every!r}")
    return float(seconds)


def check_missed(missed: object) -> MissedPolicy:
    """``latest`` (run the latest missed tick once) or ``skip`` (run none), or InvalidSchedule."""
    for policy in MISSED_POLICIES:
        if missed == policy:
            return policy
    raise InvalidSchedule(f"missed must be 'latest' or 'skip', got {missed!r}")


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule ticks: ``cron`` in zone ``tz``, or ``every`` seconds."""

    cron: str | None
    every: float | None
    tz: str

    @classmethod
    def checked(cls, cron: object = None, every: object = None, tz: object = DEFAULT_TZ) -> Timing:
        """A Timing from user input: exactly one of ``cron`` and ``every``, a known zone."""
        if (cron is None) == (every is None):
            raise InvalidSchedule("give a schedule exactly one of cron=... or every=...")
        check_timezone(tz)
        if cron is not None:
            return cls(check_cron(cron), None, str(tz))
        return cls(None, check_every(every), str(tz))

    def next_tick(self, after: float) -> float:
        """The first tick strictly after ``after`` (POSIX seconds)."""
        if self.every is not None:
            return (math.floor(after / self.every) + 1) * self.every
        for tick in self._cron_ticks(after, reverse=False):
            if tick > after:
                return tick
        raise AssertionError("unreachable: a cron iterator never ends")  # pragma: no cover

    def latest_tick(self, at_or_before: float) -> float:
        """The last tick at or before ``at_or_before``."""
        if self.every is not None:
            return math.floor(at_or_before / self.every) * self.every
        # Just past the moment, so a tick exactly on it counts (cronsim looks strictly before).
        for tick in self._cron_ticks(at_or_before + 0.001, reverse=True):
            if tick <= at_or_before:
                break
        # cronsim walks back by wall time, which can overshoot inside a repeated fall-back
        # hour; walking forward by real time from there finds the true latest tick.
        while (following := self.next_tick(tick)) <= at_or_before:
            tick = following
        return tick

    def ticks(self, first: float, through: float) -> Iterator[float]:
        """Ticks from ``first`` (itself a tick) up to and including ``through``."""
        tick = first
        while tick <= through:
            yield tick
            tick = self.next_tick(tick)

    def _cron_ticks(self, start: float, *, reverse: bool) -> Iterator[float]:
        assert self.cron is not None
        zone = ZoneInfo(self.tz)
        # fromtimestamp sets ``fold`` for a wall time that occurs twice, so the start is exact;
        # the callers still check each tick against the start, because cronsim compares wall
        # times and may yield the first 02:30 when started from the second 01:59-03:00 hour.
        from cronsim import CronSim

        for moment in CronSim(self.cron, datetime.fromtimestamp(start, zone), reverse=reverse):
            yield moment.timestamp()


@dataclass(frozen=True, slots=True)
class FiringPlan:
    """What one scheduler run does for one due schedule: the ticks to enqueue, the next tick."""

    ticks: tuple[float, ...]
    next_run_at: float


def plan_firing(
    timing: Timing, next_run_at: float, now: float, late_since: float, missed: MissedPolicy
) -> FiringPlan | None:
    """The ticks to enqueue now for a schedule whose first unfired tick is ``next_run_at``.

    A tick after ``late_since`` (when this scheduler last looked) is *late*: a running
    scheduler was about to enqueue it, so it runs. A tick at or before ``late_since`` is
    *missed*: no scheduler was running when it fell due (every run leaves ``next_run_at``
    past its ``now``). Missed ticks collapse into the latest one (``missed="latest"``) or
    none (``"skip"``). None when nothing is due yet.
    """
    if next_run_at > now:
        return None
    ticks: list[float] = []
    first_late = next_run_at
    if next_run_at <= late_since:
        latest_missed = timing.latest_tick(min(late_since, now))
        if missed == "latest" and latest_missed >= next_run_at:
            ticks.append(latest_missed)
        first_late = timing.next_tick(max(late_since, latest_missed))
    for tick in timing.ticks(first_late, now):
        ticks.append(tick)
        if len(ticks) >= MAX_LATE_TICKS:
            break
    return FiringPlan(tuple(ticks), timing.next_tick(now))


def tick_iso(tick: float) -> str:
    """A tick as ISO-8601 UTC, as the job's ``scheduled_for`` and its key say it."""
    return datetime.fromtimestamp(tick, UTC).isoformat()


def describe(record: ScheduleRecord) -> dict[str, Any]:
    """The JSON shape of one schedule (``app.schedules()``, ``GET /api/schedules``)."""
    spec = record.spec
    args, kwargs = decode_payload(spec.payload)
    timing: dict[str, Any] = {"cron": spec.cron} if spec.cron is not None else {"every": spec.every}
    return {
        "name": spec.name,
        "task": spec.task,
        **timing,
        "tz": spec.tz,
        "args": args,
        "kwargs": kwargs,
        "queue": spec.queue,
        "missed": spec.missed,
        "paused": record.paused,
        "next_run_at": _iso(record.next_run_at),
        "last_run_at": _iso(record.last_run_at),
        "last_job_id": record.last_job_id,
    }


def _iso(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()
