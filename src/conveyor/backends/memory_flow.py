"""memory://: the flow-control operations of the Backend protocol and the claim's flow rules.

A mixin of :class:`~conveyor.backends.memory.MemoryBackend`, kept in a module of its
own so the engine's main module stays about its job life cycle. Every method here
runs with the store's lock held (taken by the public ones, by ``claim`` for the
private ones), as the other engines' statements and scripts run in one step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import flow
from .flow import GroupUsage, QueueSettings, QueueUpdate, QueueUsage


class MemoryFlow:
    """Queue settings, usage and the managed-queue pick on an in-process store (mixed into MemoryBackend)."""

    if TYPE_CHECKING:  # supplied by MemoryBackend
        _store: Any

    # -- flow control ----------------------------------------------------------------
    def queue_update(self, update: QueueUpdate) -> QueueSettings:
        """Apply a checked change to one queue's settings; the next claim sees it."""
        store = self._store
        with store.changed:
            settings = store.settings[update.name] = update.applied_to(store.settings.get(update.name))
            store.changed.notify_all()  # a resumed or widened queue may have claimable jobs
        return settings

    def queue_usage(self, names: Sequence[str] | None = None) -> list[QueueUsage]:
        """Managed queues against their limits: processing, starts in the rate window, busiest groups."""
        store = self._store
        with store.lock:
            now = time.time()
            wanted = sorted(store.settings) if names is None else sorted(set(names) & set(store.settings))
            usage: list[QueueUsage] = []
            for queue in wanted:
                settings = store.settings[queue]
                starts = self._recent_starts(settings, now)
                running = [store.jobs[i] for i in store.processing.get(queue, ())]
                waiting = [store.jobs[i] for i in store.waiting.get(queue, ())]
                groups: dict[str, list[int]] = {}
                for jobs, column in ((waiting, 0), (running, 1)):
                    for job in jobs:
                        if job.group_key is not None:
                            groups.setdefault(job.group_key, [0, 0])[column] += 1
                top = flow.busiest(GroupUsage(g, w, p) for g, (w, p) in groups.items())
                started = self._started(starts, settings.rate_limit, now)
                usage.append(QueueUsage(settings, len(running), started, top))
        return usage

    def _flow_pick(self, settings: QueueSettings, limit: int, now: float) -> list[Any]:
        """The due jobs a claim may take from a managed queue (the flow module's rules). Lock held."""
        store = self._store
        queue = settings.name
        starts = self._recent_starts(settings, now)
        running = [store.jobs[i] for i in store.processing.get(queue, ())]
        room = flow.queue_room(settings, len(running), self._started(starts, settings.rate_limit, now), limit)
        if room <= 0:
            return []
        due = [store.jobs[i] for i in store.waiting.get(queue, ()) if store.jobs[i].run_at <= now]
        due.sort(key=lambda job: (-job.priority, job.fair_rank, job.run_at, job.id))
        due = due[: flow.scan_size(room)]
        rooms: dict[str, int | None] = {}
        if flow.has_group_limits(settings):
            for group in {job.group_key for job in due if job.group_key is not None}:
                busy = sum(1 for job in running if job.group_key == group)
                started = self._started(starts, settings.group_rate_limit, now, group)
                rooms[group] = flow.group_room(settings, busy, started)
        chosen = set(flow.pick(((job.id, job.group_key) for job in due), room, rooms))
        return [job for job in due if job.id in chosen]

    def _recent_starts(self, settings: QueueSettings, now: float) -> deque[tuple[float, str | None]]:
        """The queue's recorded starts, pruned past its longest rate window. Lock held."""
        starts: deque[tuple[float, str | None]] = self._store.starts.setdefault(settings.name, deque())
        horizon = now - settings.longest_window
        while starts and starts[0][0] <= horizon:
            starts.popleft()
        return starts

    @staticmethod
    def _started(
        starts: Iterable[tuple[float, str | None]],
        rate: flow.Rate | None,
        now: float,
        group: str | None = None,
    ) -> int:
        """Starts within ``rate``'s window (of ``group`` when given); 0 without a rate."""
        if rate is None:
            return 0
        since = now - rate.period
        return sum(1 for at, g in starts if at > since and (group is None or g == group))
