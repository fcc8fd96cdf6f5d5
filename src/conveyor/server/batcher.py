"""Group commit for ``POST /api/jobs``: concurrent requests share one ``enqueue_many`` round trip.

The first request starts a write at once (no timer, so no added latency when idle);
requests that arrive while it is in flight wait for the next write, which takes
them all. Under load this turns many small transactions into a few large ones,
which is what every backend is fastest at (one SQLite commit, one PostgreSQL
statement, one Redis pipeline).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from ..app import App
from ..backends.base import EnqueueResult, NewJob

#: Jobs per round trip at most.
MAX_JOBS_PER_WRITE = 1000


@dataclass
class _Request:
    jobs: list[NewJob]
    future: asyncio.Future[list[EnqueueResult]]


class EnqueueBatcher:
    """Collects the NewJobs of concurrent requests into shared ``enqueue_many`` calls."""

    def __init__(self, app: App, max_jobs: int = MAX_JOBS_PER_WRITE) -> None:
        self.app = app
        self.max_jobs = max_jobs
        self.enabled = True
        self._waiting: list[_Request] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, jobs: list[NewJob]) -> list[EnqueueResult]:
        """Store ``jobs`` (in one transaction with whatever else is waiting); results in order."""
        future: asyncio.Future[list[EnqueueResult]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Request(jobs, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await future

    def _next_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        keys: set[str] = set()
        size = 0
        rest: list[_Request] = []
        for request in self._waiting:
            request_keys = {j.key for j in request.jobs if j.key is not None}
            fits = not batch or size + len(request.jobs) <= self.max_jobs
            # Two requests with one key go to separate writes, so the second sees the first
            # exactly as it would had they come one after the other.
            if fits and not (request_keys & keys):
                batch.append(request)
                keys |= request_keys
                size += len(request.jobs)
            else:
                rest.append(request)
        self._waiting = rest
        return batch

    async def _write_all(self) -> None:
        batch: list[_Request] = []
        try:
            while self._waiting:
                batch = self._next_batch()
                await self._write(batch)
                batch = []
        finally:
            # Cancelled (server shutting down): nobody may be left waiting forever.
            for request in batch + self._waiting:
                if not request.future.done():
                    request.future.set_exception(RuntimeError("the server stopped before the job was stored"))
            self._waiting = []

    async def _write(self, batch: list[_Request]) -> None:
        jobs = [job for request in batch for job in request.jobs]
        try:
            results = await run_in_threadpool(self.app.backend.enqueue_many, jobs)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
            if len(batch) == 1:
                resolve(batch[0], exc)
                return
            # One bad request must not fail its neighbours: write each on its own.
            for request in batch:
                resolve(request, await _attempt(self.app, request.jobs))
            return
        start = 0
        for request in batch:
            end = start + len(request.jobs)
            resolve(request, results[start:end])
            start = end


async def _attempt(app: App, jobs: list[NewJob]) -> list[EnqueueResult] | BaseException:
    try:
        return await run_in_threadpool(app.backend.enqueue_many, jobs)
    except Exception as exc:  # noqa: BLE001 - handed to the waiting request
        return exc


def resolve(request: _Request, outcome: list[EnqueueResult] | BaseException) -> None:
    """Resolve a waiting request with its results or its error (unless it gave up waiting)."""
    if request.future.done():
        return
    if isinstance(outcome, BaseException):
        request.future.set_exception(outcome)
    else:
        request.future.set_result(outcome)
