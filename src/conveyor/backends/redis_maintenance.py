"""Redis: the schedule and alert operations of the Backend protocol, and the failure count.

A mixin of :class:`~conveyor.backends.redis.RedisBackend` (which supplies ``_run``,
``clients`` and ``base``). Writes are Lua scripts beside the others
(``schedule_*.lua``, ``alert_*.lua``, ``failures_since.lua``): a firing's
compare-and-set and the jobs it stores are one script, so one atomic step. Key layout
(``docs/redis.md``): ``s:<name>`` and the set ``schedules``; ``al:<name>`` and the set
``alerts``; ``fl:<queue>:`` the queue's failed jobs by the time they failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import kit
from .base import (
    AlertFiring,
    AlertRecord,
    AlertSpec,
    FailureCount,
    NewJob,
    ScheduleFiring,
    ScheduleRecord,
    ScheduleSpec,
)
from .redis_support import translate_errors

#: The longest alert window: failure entries older than this are trimmed.
FAILURE_MEMORY = 7 * 86400.0


def _num(value: float) -> str:
    return repr(float(value))


def _meta(job: NewJob) -> str:
    return f"{job.id}|{job.task}|{job.queue}|{job.priority}|{job.max_attempts}"


class RedisMaintenance:
    """Schedules, alerts and failure counts on Redis (mixed into RedisBackend)."""

    if TYPE_CHECKING:  # supplied by RedisBackend
        base: str
        server: str

        @property
        def clients(self) -> Any: ...
        def _run(self, name: str, args: Sequence[Any], *, retry: bool = False) -> Any: ...

    def _hashes(self, kind: str, members: str) -> list[tuple[str, dict[str, str]]]:
        client = self.clients.retrying
        names = sorted(client.smembers(self.base + members))
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.base + kind + name)
        return [(name, row) for name, row in zip(names, pipe.execute(), strict=True) if row]

    # -- schedules ---------------------------------------------------------------------
    @translate_errors
    def schedule_save(self, specs: Sequence[ScheduleSpec]) -> None:
        """Create or update schedules (an unchanged timing keeps its next tick)."""
        args: list[Any] = []
        for s in specs:
            every = "" if s.every is None else _num(s.every)
            args += [s.name, s.task, s.cron or "", every, s.tz, s.payload, s.queue or "", s.missed]
            args.append(_num(s.next_run_at))
        if args:
            self._run("schedule_save", args, retry=True)

    @translate_errors
    def schedule_list(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        records = []
        for name, row in self._hashes("s:", "schedules"):
            fields: dict[str, Any] = {f: row.get(f) for f in kit.SCHEDULE_FIELDS}
            fields["name"] = name
            fields["every"] = row.get("every") or None
            records.append(kit.schedule_record(fields))
        return records

    @translate_errors
    def schedule_delete(self, names: Sequence[str]) -> int:
        """Delete schedules by name."""
        return int(self._run("schedule_delete", ["s:", "schedules", *names], retry=True)) if names else 0

    @translate_errors
    def schedule_pause(self, names: Sequence[str], paused: bool, next_run_at: float | None = None) -> int:
        """Pause or resume schedules."""
        if not names:
            return 0
        moved = "" if next_run_at is None else _num(next_run_at)
        return int(self._run("schedule_pause", ["1" if paused else "0", moved, *names], retry=True))

    @translate_errors
    def schedule_fire(self, firings: Sequence[ScheduleFiring]) -> list[bool]:
        """Each firing's compare-and-set and its jobs, one script per firing."""
        applied = []
        for firing in firings:
            expected, following = ("", "") if firing.advance is None else map(_num, firing.advance)
            args: list[Any] = [firing.name, expected, following]
            for tick, job in firing.jobs:
                args += [_meta(job), job.payload, job.on_complete or "", job.group or "", _num(tick)]
            applied.append(bool(int(self._run("schedule_fire", args))))
        return applied

    # -- failure alerts ------------------------------------------------------------------
    @translate_errors
    def alert_save(self, specs: Sequence[AlertSpec]) -> None:
        """Create or update alerts (``last_fired_at`` is kept)."""
        args: list[Any] = []
        for s in specs:
            args += [s.name, s.url, str(s.threshold), _num(s.window), s.queue or ""]
        if args:
            self._run("alert_save", args, retry=True)

    @translate_errors
    def alert_list(self) -> list[AlertRecord]:
        """Every alert, by name."""
        records = []
        for name, row in self._hashes("al:", "alerts"):
            fields: dict[str, Any] = {f: row.get(f) for f in kit.ALERT_FIELDS}
            fields["name"] = name
            records.append(kit.alert_record(fields))
        return records

    @translate_errors
    def alert_delete(self, names: Sequence[str]) -> int:
        """Delete alerts by name."""
        return int(self._run("schedule_delete", ["al:", "alerts", *names], retry=True)) if names else 0

    @translate_errors
    def failures_since(self, since: float, queue: str | None = None, limit: int = 20) -> FailureCount:
        """Failed jobs that entered ``failed`` at or after ``since``: how many, and the newest ids."""
        keep_after = min(since, float(self.clients.retrying.time()[0]) - FAILURE_MEMORY)
        reply = self._run(
            "failures_since", [_num(since), max(limit, 0), _num(keep_after), queue or ""], retry=True
        )
        return FailureCount(int(reply[0]), tuple(reply[1:]))

    @translate_errors
    def alert_fire(self, firings: Sequence[AlertFiring]) -> list[bool]:
        """Stamp each alert that is quiet since its window began, and store its job."""
        applied = []
        for f in firings:
            job = f.job
            args = [
                f.name,
                _num(f.fired_at),
                _num(f.quiet_since),
                _meta(job),
                job.payload,
                job.on_complete or "",
                job.group or "",
            ]
            applied.append(bool(int(self._run("alert_fire", args))))
        return applied
