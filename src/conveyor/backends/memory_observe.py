"""memory://: the observability and history operations of the Backend protocol.

A mixin of :class:`~conveyor.backends.memory.MemoryBackend`, kept in a module of its
own so the engine's main module stays about its job life cycle: counts and gauges,
throughput per minute, attempt records, the operators' actions, the worker registry and progress. Each
operation holds the store's lock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import kit
from .base import (
    ActionRecord,
    AttemptRecord,
    Gauges,
    NewAction,
    ProgressUpdate,
    Stats,
    WorkerBeat,
    WorkerRecord,
    from_ts,
)
from .throughput import DEFAULT_MINUTES, Throughput, check_minutes, minute_of, series, window_since


class MemoryObservability:
    """Stats, gauges, audits, actions, workers and progress in a store (mixed into MemoryBackend)."""

    if TYPE_CHECKING:  # supplied by MemoryBackend
        _store: Any

        def _held(self, job_id: str, token: str) -> Any: ...

    def stats(self) -> Stats:
        """Counts by state, overall and per queue, and the age of the oldest due pending job."""
        counts: dict[tuple[str, str], int] = {}
        with self._store.lock:
            now = time.time()
            oldest: float | None = None
            for job in self._store.jobs.values():
                counts[job.queue, job.state] = counts.get((job.queue, job.state), 0) + 1
                if job.state == "pending" and job.run_at <= now and (oldest is None or job.run_at < oldest):
                    oldest = job.run_at
        groups = [(queue, state, n) for (queue, state), n in counts.items()]
        return kit.stats_from_counts(groups, None if oldest is None else now - oldest)

    def audits(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[AttemptRecord]:
        """Attempt records, newest first, optionally for one job."""
        with self._store.lock:
            records: list[AttemptRecord] = (
                self._store.audit_log if job_id is None else self._store.attempts.get(job_id, [])
            )
            newest_first = records[::-1]
        return newest_first[offset : offset + max(limit, 0)]

    def record_actions(self, actions: Sequence[NewAction]) -> None:
        """Store actions with their job links."""
        with self._store.lock:
            now = time.time()
            for action in actions:
                record = ActionRecord(
                    id=len(self._store.actions) + 1,
                    at=from_ts(now),  # type: ignore[arg-type]
                    actor=action.actor,
                    role=action.role,
                    action=action.action,
                    job_id=kit.action_job_id(action.job_ids),
                    count=action.count,
                    detail=None if action.detail is None else json.loads(action.detail),
                )
                self._store.actions.append(record)
                for job_id in action.job_ids:
                    self._store.job_actions.setdefault(job_id, []).append(record.id)

    def list_actions(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[ActionRecord]:
        """Recorded actions, newest first, optionally only those naming ``job_id``."""
        with self._store.lock:
            actions: list[ActionRecord] = self._store.actions
            if job_id is None:
                found = actions[::-1]
            else:
                found = [actions[i - 1] for i in reversed(self._store.job_actions.get(job_id, []))]
        return found[offset : offset + max(limit, 0)]

    # -- observability -------------------------------------------------------------
    def workers_beat(self, beats: Sequence[WorkerBeat], ttl_seconds: float) -> None:
        """Register or renew workers until ``ttl_seconds`` from now."""
        with self._store.lock:
            now = time.time()
            for beat in beats:
                self._store.workers[beat.id] = (kit.worker_info(beat), now, now + ttl_seconds)

    def workers_remove(self, worker_ids: Sequence[str]) -> None:
        """Take workers off the list."""
        with self._store.lock:
            for worker_id in worker_ids:
                self._store.workers.pop(worker_id, None)

    def workers_live(self) -> list[WorkerRecord]:
        """Workers whose beat has not expired, oldest first; expired ones are forgotten."""
        with self._store.lock:
            now = time.time()
            workers = self._store.workers
            for worker_id in [w for w, (_, _, expires) in workers.items() if expires < now]:
                del workers[worker_id]
            entries = list(workers.values())
        records = [kit.worker_record(info, seen) for info, seen, _ in entries]
        return sorted(records, key=lambda r: (r.beat.started_at, r.beat.id))

    def queue_gauges(self) -> Gauges:
        """Counts by queue and state, and each queue's oldest due pending job's age."""
        counts: dict[tuple[str, str], int] = {}
        oldest: dict[str, float] = {}
        with self._store.lock:
            now = time.time()
            for job in self._store.jobs.values():
                counts[job.queue, job.state] = counts.get((job.queue, job.state), 0) + 1
                if (
                    job.state == "pending"
                    and job.run_at <= now
                    and job.run_at < oldest.get(job.queue, now + 1)
                ):
                    oldest[job.queue] = job.run_at
        groups = [(queue, state, n) for (queue, state), n in counts.items()]
        return kit.gauges_from(groups, [(queue, now - due) for queue, due in oldest.items()])

    def jobs_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        """Store progress on the jobs whose lease the update still holds."""
        with self._store.lock:
            now = time.time()
            for update in updates:
                job = self._held(update.job_id, update.lease_token)
                if job is not None:
                    job.progress = kit.progress_text(update, now)

    def throughput(self, minutes: int = DEFAULT_MINUTES, queue: str | None = None) -> Throughput:
        """Jobs completed and failed per minute over the last ``minutes``, from their ``finished_at``."""
        minutes = check_minutes(minutes)
        counts: dict[tuple[int, str], int] = {}
        with self._store.lock:
            now = time.time()
            since = window_since(now, minutes)
            for job in self._store.jobs.values():
                if (
                    job.state in ("completed", "failed")
                    and job.finished_at is not None
                    and job.finished_at >= since
                    and (queue is None or job.queue == queue)
                ):
                    bucket = (minute_of(job.finished_at), job.state)
                    counts[bucket] = counts.get(bucket, 0) + 1
        return series(now, minutes, queue, [(m, kind, n) for (m, kind), n in counts.items()])
