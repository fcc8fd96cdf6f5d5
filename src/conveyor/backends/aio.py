"""The async counterpart of the Backend protocol, for producers on an event loop.

:class:`AsyncBackend` lists the operations a producer or an admin tool awaits:
enqueue, the reads and the admin writes; workers keep the sync protocol. An engine
with a native async driver implements it beside its sync class, reusing the same
SQL blocks or Lua scripts and the kit's row mapping (``pg_async.py``,
``redis_async.py``); every other engine gets :class:`ThreadedAsyncBackend`, which
hands each call to the sync backend on a bounded pool of threads, so the event loop
never blocks and no more than ``max_threads`` calls wait on the engine at once.

``Job.aresult`` waits between reads on the sync backend's ``watch_finishes``: the
engine's listener thread wakes the loop (``call_soon_threadsafe``), so waiting needs
no async connection of its own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..states import State
from .base import AttemptRecord, Backend, EnqueueResult, JobQuery, JobRecord, NewJob, Page, Stats

T = TypeVar("T")

#: Threads a ThreadedAsyncBackend runs engine calls on: enough to overlap round trips,
#: few enough that 1,000 concurrent awaits queue in the pool instead of opening 1,000 threads.
DEFAULT_MAX_THREADS = 16


@runtime_checkable
class AsyncBackend(Protocol):
    """Producer and admin operations, awaited. Same semantics as the sync Backend's."""

    #: The sync backend for the same URL (workers, and whatever is not awaited).
    backend: Backend

    async def aclose(self) -> None:
        """Release what the async side holds (the sync backend stays open)."""
        ...

    async def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """As ``Backend.enqueue_many``; ``connection`` is the engine's async connection."""
        ...

    async def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempt records, or None."""
        ...

    async def list_jobs(self, query: JobQuery) -> Page:
        """Jobs matching ``query``, newest first."""
        ...

    async def stats(self) -> Stats:
        """Counts by state and queue."""
        ...

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a waiting job, or flag a running one."""
        ...

    async def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending."""
        ...

    async def resubmit_many(self, query: JobQuery, payload: str | None = None) -> int:
        """Resubmit every failed/cancelled job matching ``query``."""
        ...

    async def delete(self, job_id: str) -> None:
        """Delete a job that is not processing."""
        ...

    async def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Delete one batch of finished jobs."""
        ...

    async def audits(
        self, job_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[AttemptRecord]:
        """Attempt records, newest first."""
        ...


class ThreadedAsyncBackend:
    """Any sync Backend, awaited: each call runs on a bounded pool of threads.

    The pool is this object's own (not the loop's default executor), so producers
    never starve ``asyncio.to_thread`` users of the application, and its size bounds
    how many calls wait on the engine at once.
    """

    def __init__(self, backend: Backend, *, max_threads: int = DEFAULT_MAX_THREADS) -> None:
        self.backend = backend
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="conveyor-async")

    def __repr__(self) -> str:
        return f"<ThreadedAsyncBackend {self.backend!r}>"

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def aclose(self) -> None:
        """Stop the threads (calls already handed over finish first)."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)

    async def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """Store jobs on a pool thread."""
        return await self._call(self.backend.enqueue_many, jobs, connection)

    async def get(self, job_id: str) -> JobRecord | None:
        """One job, read on a pool thread."""
        return await self._call(self.backend.get, job_id)

    async def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, read on a pool thread."""
        return await self._call(self.backend.list_jobs, query)

    async def stats(self) -> Stats:
        """Counts by state and queue, read on a pool thread."""
        return await self._call(self.backend.stats)

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel on a pool thread."""
        return await self._call(self.backend.cancel, job_id)

    async def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """Resubmit on a pool thread."""
        return await self._call(self.backend.resubmit, job_id, payload)

    async def resubmit_many(self, query: JobQuery, payload: str | None = None) -> int:
        """Resubmit matching jobs on a pool thread; how many."""
        return len(await self._call(self.backend.resubmit_many, query, payload))

    async def delete(self, job_id: str) -> None:
        """Delete on a pool thread."""
        await self._call(self.backend.delete, job_id)

    async def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Purge one batch on a pool thread."""
        return await self._call(self.backend.purge, states, before, batch_size)

    async def audits(
        self, job_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[AttemptRecord]:
        """Attempt records, read on a pool thread."""
        return await self._call(self.backend.audits, job_id, limit, offset)


__all__ = ["DEFAULT_MAX_THREADS", "AsyncBackend", "ThreadedAsyncBackend"]
