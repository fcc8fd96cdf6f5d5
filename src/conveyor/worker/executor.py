"""Runs claimed jobs with bounded concurrency: threads for sync tasks, one event loop for async.

Timeouts: an async task is cancelled at its deadline; a sync task's thread gets
``TaskTimeout`` raised in it, and a fresh thread takes its place so the worker
keeps its full concurrency even if the old one never unwinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..backends.base import Outcome
from ..context import enter_job, leave_job
from ..errors import JobCancelled, TaskTimeout
from ..tracing import ConsumerSpan, start_consumer_span
from .attempt import Attempt, call_arguments, encode_result, outcome_for_error, timed_out

log = logging.getLogger("conveyor.worker")

OnOutcome = Callable[[Attempt, Outcome], None]
#: Told when an attempt starts running (worker metrics); must be cheap.
OnStart = Callable[[Attempt], None]
#: Told (job id, task) when a task ran out of memory; None: MemoryError is the job's error.
OnMemoryError = Callable[[str, str], None]

_STOP = object()


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


class Executor:
    """Runs Attempts; reports each decided Outcome through ``on_outcome``."""

    def __init__(
        self,
        concurrency: int,
        worker_id: str,
        on_outcome: OnOutcome,
        on_start: OnStart | None = None,
        *,
        on_memory_error: OnMemoryError | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.worker_id = worker_id
        self.on_outcome = on_outcome
        self.on_start = on_start
        self.on_memory_error = on_memory_error
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: set[threading.Thread] = set()
        self._abandoned: set[int] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._deadlines: list[tuple[float, int, Attempt]] = []
        self._deadline_cv = threading.Condition()
        self._watchdog: threading.Thread | None = None
        self._counter = itertools.count()
        self._closed = False

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        """Start the sync threads (the event loop starts on the first async job)."""
        for _ in range(self.concurrency):
            self._spawn_thread()

    def _spawn_thread(self) -> None:
        thread = threading.Thread(target=self._thread_main, name="conveyor-exec", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def close(self) -> None:
        """Stop the threads and the loop (running work is not waited for here)."""
        self._closed = True
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._work.put(_STOP)
        with self._deadline_cv:
            self._deadline_cv.notify_all()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    # -- submission ------------------------------------------------------------
    def submit(self, attempt: Attempt) -> None:
        """Run an attempt as soon as a slot is free (the caller bounds how many are queued).

        Every job takes one of the ``concurrency`` slot threads: a sync job runs on it,
        an async job runs on the event loop while its slot thread waits, so sync and
        async jobs together never exceed the concurrency.
        """
        self._work.put(attempt)

    def cancel(self, attempt: Attempt) -> None:
        """Cancel an async attempt (sync ones only see ``cancel_requested``)."""
        future = attempt.future
        if future is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(future.cancel)

    # -- sync jobs -------------------------------------------------------------
    def _thread_main(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                item = self._work.get()
                if item is _STOP:
                    return
                task = item.task
                if task is not None and task.is_async:
                    loop = self._ensure_loop()
                    asyncio.run_coroutine_threadsafe(self._run_async(item), loop).result()
                    continue
                # A timeout raised after the outcome was decided is already recorded.
                with contextlib.suppress(TaskTimeout):
                    self._run_sync(item)
                if threading.get_ident() in self._abandoned:
                    return  # a replacement thread has taken this slot
        except BaseException:
            log.debug("executor thread ended by a late exception", exc_info=True)
        finally:
            with self._lock:
                self._threads.discard(me)
                self._abandoned.discard(threading.get_ident())

    def _run_sync(self, attempt: Attempt) -> None:
        task = attempt.task
        with attempt.lock:
            if attempt.decided:
                return  # released or cancelled before it started
            attempt.thread_id = threading.get_ident()
            attempt.started_at = time.time()
        if self.on_start is not None:
            self.on_start(attempt)
        token = enter_job(attempt.context)
        if task is not None and task.defaults.timeout is not None:
            self._watch(attempt, time.monotonic() + task.defaults.timeout)
        span = attempt.span = _span(attempt)
        try:
            if span is None:
                result = self._call_sync(attempt)
            else:
                with span.activate():
                    result = self._call_sync(attempt)
        except MemoryError as exc:
            if self.on_memory_error is not None:
                self.on_memory_error(attempt.job.id, attempt.job.task)
            self._finish(attempt, error=exc)
        except BaseException as exc:  # noqa: BLE001 - every failure is the job's outcome
            self._finish(attempt, error=exc)
        else:
            self._finish(attempt, result=result)
        finally:
            leave_job(token)

    @staticmethod
    def _call_sync(attempt: Attempt) -> str:
        task = attempt.task
        if task is None or task.fn is None:
            raise LookupError(f"task {attempt.job.task!r} is not registered in this worker")
        args, kwargs = call_arguments(attempt)
        return encode_result(task.fn(*args, **kwargs))

    # -- the end of every attempt -------------------------------------------------------
    def _finish(
        self, attempt: Attempt, *, result: str | None = None, error: BaseException | None = None
    ) -> bool:
        """Decide the attempt's outcome and report it, unless it was decided already.

        The one ending of every path (sync, async, timeout, cancel): a late result
        racing a timeout or a release is discarded here. True if this call decided.
        """
        if not attempt.decide():
            return False
        if error is None:
            outcome = attempt.outcome("completed", self.worker_id, result=result)
        else:
            outcome = outcome_for_error(attempt, error, self.worker_id)
        if attempt.span is not None:
            attempt.span.end(outcome.kind, error)
        self.on_outcome(attempt, outcome)
        return True

    # -- the watchdog for sync timeouts --------------------------------------------
    def _watch(self, attempt: Attempt, deadline: float) -> None:
        with self._deadline_cv:
            heapq.heappush(self._deadlines, (deadline, next(self._counter), attempt))
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watchdog_main, name="conveyor-watchdog", daemon=True
                )
                self._watchdog.start()
            self._deadline_cv.notify()

    def _watchdog_main(self) -> None:
        while not self._closed:
            with self._deadline_cv:
                now = time.monotonic()
                while self._deadlines and self._deadlines[0][2].decided:
                    heapq.heappop(self._deadlines)
                if not self._deadlines:
                    self._deadline_cv.wait()
                    continue
                deadline, _, attempt = self._deadlines[0]
                if deadline > now:
                    self._deadline_cv.wait(deadline - now)
                    continue
                heapq.heappop(self._deadlines)
            self._time_out(attempt)

    def _time_out(self, attempt: Attempt) -> None:
        exc = timed_out(attempt)
        if not self._finish(attempt, error=exc):
            return  # it finished (or was released) just before its deadline
        thread_id = attempt.thread_id
        if thread_id is not None:
            with self._lock:
                self._abandoned.add(thread_id)
            _raise_in_thread(thread_id, TaskTimeout)
            self._spawn_thread()  # keep full concurrency whatever the old thread does
        log.warning("job %s (%s) %s", attempt.job.id, attempt.job.task, exc)

    # -- async jobs ------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    ready.set()
                    loop.run_forever()

                self._loop_thread = threading.Thread(target=main, name="conveyor-loop", daemon=True)
                self._loop_thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    async def _run_async(self, attempt: Attempt) -> None:
        task = attempt.task
        assert task is not None and task.fn is not None
        with attempt.lock:
            if attempt.decided:
                return  # released or cancelled before it started
            attempt.started_at = time.time()
        if self.on_start is not None:
            self.on_start(attempt)
        enter_job(attempt.context)
        timeout = task.defaults.timeout
        attempt.future = asyncio.current_task()
        span = attempt.span = _span(attempt)
        try:
            args, kwargs = call_arguments(attempt)
            coro = task.fn(*args, **kwargs)
            awaited = asyncio.wait_for(coro, timeout) if timeout is not None else coro
            if span is None:
                value = await awaited
            else:
                with span.activate():  # the task's own spans are children of this one
                    value = await awaited
            result = encode_result(value)
        except MemoryError as exc:
            if self.on_memory_error is not None:
                self.on_memory_error(attempt.job.id, attempt.job.task)
            self._finish(attempt, error=exc)
        except asyncio.CancelledError:
            self._finish(attempt, error=JobCancelled(f"job {attempt.job.id} was cancelled while running"))
        except TimeoutError:
            self._finish(attempt, error=timed_out(attempt))
        except BaseException as exc:  # noqa: BLE001 - every failure is the job's outcome
            self._finish(attempt, error=exc)
        else:
            self._finish(attempt, result=result)


def _span(attempt: Attempt) -> ConsumerSpan | None:
    """The attempt's consumer span, or None (always None without OpenTelemetry)."""
    job = attempt.job
    return start_consumer_span(job.task, job.id, job.queue, job.attempt, job.max_attempts, job.trace_context)
