"""Redis: the enqueue script's arguments and reply (docs/redis.md, "The enqueue arguments").

Shared by the sync and the async backend. Consecutive plain jobs (no key, callback or
group) that share their other fields travel as one run: a header, then an id and a
payload per job; any other job travels as a record of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InvalidName
from .base import EnqueueResult, NewJob


def _num(value: float) -> str:
    """A float as exact text for Lua's tonumber (repr round-trips)."""
    return repr(float(value))


def enqueue_args(jobs: Sequence[NewJob]) -> list[Any]:
    """The enqueue script's arguments for ``jobs`` (docs/redis.md, "The enqueue arguments").

    Consecutive jobs without a key, callback or group that share their other fields go
    as one run: a header, then two arguments per job (id, payload). Bulk enqueues are
    mostly such runs, so most jobs cost two arguments instead of five. Sync or async.
    """
    args: list[Any] = []
    append = args.append
    shape: tuple[Any, ...] | None = None
    header_at = 0  # where the open run's header goes
    fields = ""  # the open run's shared fields
    n = 0
    for job in jobs:
        (
            job_id,
            task,
            queue,
            payload,
            max_attempts,
            priority,
            run_at,
            delay,
            key,
            mode,
            callback,
            group,
            trace,
        ) = job
        if key is None and callback is None and group is None:
            if (task, queue, priority, run_at, delay, max_attempts, trace) == shape:
                append(job_id)
                append(payload)
                n += 1
                continue
            if shape is not None:
                args[header_at] = f"P|{n}|{fields}"
            shape = (task, queue, priority, run_at, delay, max_attempts, trace)
            fields = _fields(job, task, queue, priority, run_at, delay, max_attempts, trace)
            header_at, n = len(args), 1
            args += ("", job_id, payload)
            continue
        if shape is not None:
            args[header_at] = f"P|{n}|{fields}"
            shape = None
        fields = _fields(job, task, queue, priority, run_at, delay, max_attempts, trace)
        one = f"J|{job_id}|{fields[: fields.rindex('|')]}|{mode}|{trace or ''}"
        if "|" in job_id:
            raise InvalidName(f"job {job_id!r}: id, task and queue may not contain '|' ({one!r})")
        args += (one, payload, key or "", callback or "", group or "")
    if shape is not None:
        args[header_at] = f"P|{n}|{fields}"
    return args


def _fields(
    job: NewJob,
    task: str,
    queue: str,
    priority: int,
    run_at: float | None,
    delay: float,
    max_attempts: int,
    trace: str | None,
) -> str:
    """``task|queue|priority|run_at|delay|max_attempts|trace_context``, checked for stray separators."""
    due = "" if run_at is None else _num(run_at)
    fields = f"{task}|{queue}|{priority}|{due}|{_num(delay)}|{max_attempts}|{trace or ''}"
    if fields.count("|") != 6:
        raise InvalidName(f"job {job.id!r}: id, task and queue may not contain '|' ({fields!r})")
    return fields


def enqueue_results(jobs: Sequence[NewJob], reply: Sequence[Any]) -> list[EnqueueResult]:
    """The enqueue script's reply as EnqueueResults, one per job in ``jobs``.

    ``reply[0]`` has a flag per job ('1': stored now, pending, under its own id); each
    '0' takes the next (id, state) pair that follows it: the job that answered instead.
    """
    flags: str = reply[0]
    if "0" not in flags:
        return [EnqueueResult(job.id, "pending", True) for job in jobs]
    results: list[EnqueueResult] = []
    answered = 1
    for job, flag in zip(jobs, flags, strict=True):
        if flag == "1":
            results.append(EnqueueResult(job.id, "pending", True))
        else:
            results.append(EnqueueResult(reply[answered], reply[answered + 1], False))
            answered += 2
    return results
