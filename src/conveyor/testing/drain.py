"""``drain``: run every due job in the calling process, for users' own tests.

It is the worker's own code path (claim, decode the stored JSON, run, write the
outcome through the same backend), one batch after another, until a claim finds
nothing due: what a test sees is what production would have stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..app import App
from ..worker import BatchResult, Worker

#: Jobs claimed per round; a drain claims again until nothing is due.
BATCH_SIZE = 100


@dataclass(frozen=True, slots=True)
class DrainResult(BatchResult):
    """What a drain did: runs in total and how each ended (``BatchResult``'s counts, summed)."""


def drain(
    app: App,
    queues: Iterable[str] | None = None,
    *,
    skip_retry_delays: bool = False,
    max_jobs: int = 10_000,
) -> DrainResult:
    """Run every due job of ``queues`` (default: every queue) in this process until none is due.

    Retries honour their backoff: a retry that is not yet due is not run, and the
    drain ends with the job in ``retry``. ``skip_retry_delays=True`` makes each retry
    due at once, so one drain drives every job to a final state (its attempts still
    count). Jobs enqueued by the tasks that run are drained too. ``max_jobs`` bounds
    the runs, so a task that keeps enqueueing itself cannot make a test hang; compare
    ``processed`` with it to tell a bound reached from a drained queue.
    """
    if max_jobs < 1:
        raise ValueError(f"max_jobs must be >= 1, got {max_jobs!r}")
    chosen = tuple(queues) if queues is not None else None
    totals = DrainResult()
    while totals.processed < max_jobs:
        worker = Worker(
            app,
            queues=chosen if chosen is not None else _every_queue(app),
            install_signal_handlers=False,
            max_retry_delay=0.0 if skip_retry_delays else None,
        )
        batch = worker.process_batch(min(BATCH_SIZE, max_jobs - totals.processed))
        if batch.processed == 0:
            break
        totals = _summed(totals, batch)
    return totals


def _summed(totals: DrainResult, batch: BatchResult) -> DrainResult:
    """The drain's counts with one more batch's added."""
    return DrainResult(**{name: count + getattr(batch, name) for name, count in totals.to_dict().items()})


def _every_queue(app: App) -> list[str]:
    """The queues that hold jobs or that a registered task names (read again every round)."""
    stored = app.stats()["queues"]
    return sorted(set(stored) | {task.defaults.queue for task in app.tasks.values()})
