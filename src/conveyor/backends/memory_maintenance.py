"""memory://: the schedule and alert operations of the Backend protocol, and the failure count.

A mixin of :class:`~conveyor.backends.memory.MemoryBackend`: each operation holds the
store's lock, so a firing's check, its jobs and its stamp are one atomic step, as the
other engines' transactions and scripts make them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .base import (
    AlertFiring,
    AlertRecord,
    AlertSpec,
    EnqueueResult,
    FailureCount,
    NewJob,
    ScheduleFiring,
    ScheduleRecord,
    ScheduleSpec,
)


class MemoryMaintenance:
    """Schedules, alerts and failure counts in an in-process store (mixed into MemoryBackend)."""

    if TYPE_CHECKING:  # supplied by MemoryBackend
        _store: Any

        def _enqueue_one(self, new: NewJob, now: float) -> EnqueueResult: ...

    # -- schedules ---------------------------------------------------------------------
    def schedule_save(self, specs: Sequence[ScheduleSpec]) -> None:
        """Create or update schedules (an unchanged timing keeps its next tick)."""
        store = self._store
        with store.lock:
            for spec in specs:
                old: ScheduleRecord | None = store.schedules.get(spec.name)
                if old is None:
                    store.schedules[spec.name] = ScheduleRecord(spec, False, spec.next_run_at, None, None)
                    continue
                same = (old.spec.cron, old.spec.every, old.spec.tz) == (spec.cron, spec.every, spec.tz)
                next_run_at = old.next_run_at if same else spec.next_run_at
                store.schedules[spec.name] = replace(old, spec=spec, next_run_at=next_run_at)

    def schedule_list(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        with self._store.lock:
            return [self._store.schedules[name] for name in sorted(self._store.schedules)]

    def schedule_delete(self, names: Sequence[str]) -> int:
        """Delete schedules by name."""
        with self._store.lock:
            return sum(self._store.schedules.pop(name, None) is not None for name in names)

    def schedule_pause(self, names: Sequence[str], paused: bool, next_run_at: float | None = None) -> int:
        """Pause or resume schedules."""
        store = self._store
        found = 0
        with store.lock:
            for name in names:
                old = store.schedules.get(name)
                if old is not None:
                    found += 1
                    moved = old.next_run_at if next_run_at is None else next_run_at
                    store.schedules[name] = replace(old, paused=paused, next_run_at=moved)
        return found

    def schedule_fire(self, firings: Sequence[ScheduleFiring]) -> list[bool]:
        """Each firing's compare-and-set and its jobs, under the store's lock."""
        store = self._store
        applied: list[bool] = []
        with store.changed:
            now = time.time()
            for firing in firings:
                record: ScheduleRecord | None = store.schedules.get(firing.name)
                ok = record is not None
                if record is not None and firing.advance is not None:
                    expected, following = firing.advance
                    ok = not record.paused and record.next_run_at == expected
                    if ok:
                        record = replace(record, next_run_at=following)
                applied.append(ok)
                if not ok or record is None:
                    continue
                for tick, job in firing.jobs:
                    self._enqueue_one(job, now)
                    stored = store.jobs[job.id]
                    stored.schedule, stored.scheduled_for = firing.name, tick
                if firing.jobs:
                    last_tick, last_job = firing.jobs[-1]
                    record = replace(record, last_run_at=last_tick, last_job_id=last_job.id)
                store.schedules[firing.name] = record
            store.changed.notify_all()
        return applied

    # -- failure alerts ------------------------------------------------------------------
    def alert_save(self, specs: Sequence[AlertSpec]) -> None:
        """Create or update alerts (``last_fired_at`` is kept)."""
        store = self._store
        with store.lock:
            for spec in specs:
                old: AlertRecord | None = store.alerts.get(spec.name)
                store.alerts[spec.name] = AlertRecord(spec, None if old is None else old.last_fired_at)

    def alert_list(self) -> list[AlertRecord]:
        """Every alert, by name."""
        with self._store.lock:
            return [self._store.alerts[name] for name in sorted(self._store.alerts)]

    def alert_delete(self, names: Sequence[str]) -> int:
        """Delete alerts by name."""
        with self._store.lock:
            return sum(self._store.alerts.pop(name, None) is not None for name in names)

    def failures_since(self, since: float, queue: str | None = None, limit: int = 20) -> FailureCount:
        """Failed jobs that finished at or after ``since``: how many, and the newest ids."""
        with self._store.lock:
            found = [
                (job.finished_at, job.id)
                for job in self._store.jobs.values()
                if job.state == "failed"
                and job.finished_at is not None
                and job.finished_at >= since
                and (queue is None or job.queue == queue)
            ]
        found.sort(reverse=True)
        return FailureCount(len(found), tuple(job_id for _, job_id in found[: max(limit, 0)]))

    def alert_fire(self, firings: Sequence[AlertFiring]) -> list[bool]:
        """Stamp each alert that is quiet since its window began, and store its job."""
        store = self._store
        applied: list[bool] = []
        with store.changed:
            now = time.time()
            for firing in firings:
                record: AlertRecord | None = store.alerts.get(firing.name)
                ok = record is not None and (
                    record.last_fired_at is None or record.last_fired_at <= firing.quiet_since
                )
                applied.append(ok)
                if ok and record is not None:
                    store.alerts[firing.name] = replace(record, last_fired_at=firing.fired_at)
                    self._enqueue_one(firing.job, now)
            store.changed.notify_all()
        return applied
