"""The one job builder: enqueue items to the NewJobs a backend stores, every check written once.

When the producer has the task's function, the arguments are bound to its signature
(:mod:`conveyor.arguments`), so a missing or misspelt argument is refused here with
InvalidArguments instead of failing every attempt on a worker.

An item has the fields of ``POST /api/jobs`` (:data:`ITEM_FIELDS`). ``App.prepare``,
``App.enqueue``, ``App.enqueue_many``, ``Task.enqueue``, the HTTP API and the built-in
callbacks all come through :func:`build_jobs`, so a rule (a name pattern, a priority
range, what ``run_at`` accepts) is the same wherever a job enters.

Times: ``run_at`` is an ISO-8601 string, an aware datetime or POSIX seconds; a time
without an offset is UTC.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .backends.base import KeyMode, NewJob
from .backends.flow import check_group
from .errors import InvalidName, InvalidPayload, PayloadTooLarge, UnknownTask
from .ids import new_job_ids
from .tracing import current_traceparent

if TYPE_CHECKING:
    from .arguments import ArgumentCheck
    from .task import Task

#: The payload fields of an item; an item with only these takes the task's defaults.
PAYLOAD_FIELDS = frozenset({"task", "args", "kwargs"})
#: The per-job options an item may carry besides its payload.
OPTION_FIELDS = frozenset(
    {"queue", "delay", "run_at", "priority", "key", "key_mode", "max_attempts", "on_complete", "group"}
)
#: Every field an item (and ``POST /api/jobs``) may carry.
ITEM_FIELDS = PAYLOAD_FIELDS | OPTION_FIELDS

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
#: Priorities every backend stores (PostgreSQL keeps them in a 32-bit ``integer``).
MIN_PRIORITY = -(2**31)
MAX_PRIORITY = 2**31 - 1
MAX_ATTEMPTS = 1000
MAX_KEY_CHARS = 512
KEY_MODES: tuple[KeyMode, ...] = ("keep", "replace")
#: Ten years: a longer delay is a mistake in units, not a plan.
MAX_DELAY_SECONDS = 10 * 366 * 86400.0
#: Times every backend stores: 1970 up to the last second of year 9999.
MAX_TIMESTAMP = 253402300799.0

_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_EMPTY_PAYLOAD = '{"args":[],"kwargs":{}}'


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


# -- one check per option ------------------------------------------------------------------------
def check_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid queue/task name, else raise InvalidName."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidName(f"invalid {kind} name {_shown(value)}: names match ^[A-Za-z0-9_.-]{{1,128}}$")
    return value


def check_priority(value: object) -> int:
    """An int priority within what every backend stores."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be an int, got {_shown(value)}")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(f"priority must be from {MIN_PRIORITY} to {MAX_PRIORITY}, got {value}")
    return value


def check_max_attempts(value: object) -> int:
    """An int attempt budget from 1 to :data:`MAX_ATTEMPTS`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS:
        raise ValueError(f"max_attempts must be an int from 1 to {MAX_ATTEMPTS}, got {_shown(value)}")
    return value


def check_seconds(name: str, value: object, maximum: float = MAX_DELAY_SECONDS) -> float:
    """Seconds (a number or a timedelta) from 0 to ``maximum``, as a float."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be seconds or a timedelta, got {_shown(value)}")
    else:
        seconds = float(value)
    if not 0 <= seconds <= maximum:  # NaN fails this too
        raise ValueError(f"{name} must be from 0 to {maximum:.0f} seconds, got {_shown(value)}")
    return seconds


def parse_time(name: str, value: object) -> float:
    """POSIX seconds from an ISO-8601 string, a datetime or POSIX seconds; no offset means UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{name} {_shown(value)} is not an ISO-8601 time such as 2024-01-01T00:00:00Z"
            ) from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        try:
            seconds = moment.timestamp()
        except (OverflowError, ValueError):
            raise ValueError(f"{name} {_shown(value)} is out of range (1970 to 9999)") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be an ISO-8601 time, a datetime or POSIX seconds, got {_shown(value)}")
    else:
        seconds = float(value)
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_TIMESTAMP):
        raise ValueError(f"{name} {_shown(value)} is out of range (1970 to 9999)")
    return seconds


def check_key(value: object) -> str:
    """An idempotency key: a non-empty string of at most :data:`MAX_KEY_CHARS` characters."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY_CHARS:
        raise ValueError(
            f"key must be a non-empty string of at most {MAX_KEY_CHARS} characters, got {_shown(value)}"
        )
    return value


def check_key_mode(value: object) -> KeyMode:
    """``keep`` (the existing job answers) or ``replace`` (the waiting job takes the new arguments)."""
    for mode in KEY_MODES:
        if value == mode:
            return mode
    raise ValueError(f"key_mode must be 'keep' or 'replace', got {_shown(value)}")


def check_url(value: object, name: str) -> str:
    """Return ``value`` if it is an absolute http(s) URL, else raise ValueError naming it."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an absolute http:// or https:// URL, got {_shown(value)}")
    return value  # type: ignore[return-value]


def check_option_names(options: Iterable[str]) -> None:
    """TypeError naming any enqueue option that does not exist."""
    unknown = sorted(set(options) - OPTION_FIELDS)
    if unknown:
        raise TypeError(f"unknown enqueue option(s) {unknown}; valid: {', '.join(sorted(OPTION_FIELDS))}")


def unknown_task(name: object, tasks: Mapping[str, object]) -> UnknownTask:
    """The error for a task name that is not registered, naming the ones that are."""
    known = ", ".join(sorted(tasks)) or "none"
    return UnknownTask(f"unknown task {_shown(name)} (registered: {known})")


# -- the payload codec ----------------------------------------------------------------------------
def encode_payload(task: str, args: object, kwargs: object, limit: int) -> str:
    """The JSON text stored for a job's arguments; InvalidPayload or PayloadTooLarge if unfit."""
    if not isinstance(args, (list, tuple)):
        raise InvalidPayload(f"args of {task} must be a list, got {type(args).__name__}")
    if type(kwargs) is not dict and not isinstance(kwargs, Mapping):  # (the ABC check is slow)
        raise InvalidPayload(f"kwargs of {task} must be an object, got {type(kwargs).__name__}")
    try:
        text = (
            _EMPTY_PAYLOAD
            if not args and not kwargs
            else _JSON.encode({"args": list(args), "kwargs": dict(kwargs)})
        )
    except RecursionError:
        # A cycle is caught above (ValueError); this is nesting deeper than the encoder recurses.
        raise InvalidPayload(
            f"arguments of {task} are nested too deeply to encode as JSON; flatten them"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(
            f"arguments of {task} are not JSON-serialisable: {exc}; pass plain data "
            "(str, int, float, bool, None, list, dict) such as ids instead of objects"
        ) from None
    # A character is at most 4 bytes: only a text that might be over the limit is encoded.
    if len(text) * 4 > limit and len(size := text.encode()) > limit:
        raise PayloadTooLarge(f"payload of {task} is {len(size):,} bytes, over the limit of {limit:,} bytes")
    return text


# -- items to jobs ------------------------------------------------------------------------------------
def build_jobs(
    items: Iterable[Mapping[str, Any]], tasks: Mapping[str, Task[Any, Any]], max_payload_bytes: int
) -> list[NewJob]:
    """NewJobs for ``items`` (fields of ``POST /api/jobs``) of the registered ``tasks``.

    Every item is checked before any is returned, so one bad item stores none. A
    field set to None is the same as leaving it out (the task's default). Each job
    carries the W3C trace context the call was made in, if any (conveyor.tracing).
    """
    items = items if isinstance(items, Sequence) else list(items)
    if not items:
        return []
    ids = new_job_ids(len(items))
    jobs: list[NewJob] = []
    append = jobs.append
    # Bound after every other check, so a bad field or an unknown task is named first.
    bind_later: list[tuple[ArgumentCheck, Sequence[Any], Mapping[str, Any]]] = []
    empty_fits = len(_EMPTY_PAYLOAD) <= max_payload_bytes
    for index, item in enumerate(items):
        if type(item) is not dict and not isinstance(item, Mapping):  # (the ABC check is slow)
            raise InvalidPayload(f"item {index} is not an object: {_shown(item)}")
        if "task" not in item:
            raise InvalidPayload(f"item {index} has no 'task'")
        name = item["task"]
        task = tasks.get(name) if isinstance(name, str) else None
        if task is None:
            raise unknown_task(name, tasks)
        args, kwargs = item.get("args") or (), item.get("kwargs") or {}
        if args or kwargs or not empty_fits:
            payload = encode_payload(name, args, kwargs, max_payload_bytes)
        else:
            payload = _EMPTY_PAYLOAD  # what encode_payload gives for no arguments, without the call
        if task.arguments is not None:  # a declared task has no signature to check against
            bind_later.append((task.arguments, args, kwargs))
        d = task.defaults
        if d.group_by is not None and item.get("group") is None:
            item = {**item, "group": task.group_of(item.get("args") or (), item.get("kwargs") or {})}
        if item.keys() <= PAYLOAD_FIELDS:  # the bulk fast path: the task's checked defaults
            append(NewJob(ids[index], name, d.queue, payload, d.max_attempts, d.priority))
            continue
        unknown = item.keys() - ITEM_FIELDS
        if unknown:
            valid = ", ".join(sorted(ITEM_FIELDS))
            raise InvalidPayload(f"item {index} has unknown field(s) {sorted(unknown)}; valid: {valid}")
        append(_with_options(ids[index], name, payload, item, task))
    for check, args, kwargs in bind_later:
        check.check(args, kwargs)
    trace_context = current_traceparent()  # once per call: every item is enqueued in one context
    if trace_context is not None:
        return [job._replace(trace_context=trace_context) for job in jobs]
    return jobs


def _with_options(
    job_id: str, name: str, payload: str, item: Mapping[str, Any], task: Task[Any, Any]
) -> NewJob:
    defaults = task.defaults
    queue, priority, max_attempts = (item.get(f) for f in ("queue", "priority", "max_attempts"))
    delay, run_at, key, key_mode, on_complete = (
        item.get(f) for f in ("delay", "run_at", "key", "key_mode", "on_complete")
    )
    if delay is not None and run_at is not None:
        raise ValueError("give delay or run_at, not both")
    return NewJob(
        id=job_id,
        task=name,
        queue=defaults.queue if queue is None else check_name("queue", queue),
        payload=payload,
        max_attempts=defaults.max_attempts if max_attempts is None else check_max_attempts(max_attempts),
        priority=defaults.priority if priority is None else check_priority(priority),
        run_at=None if run_at is None else parse_time("run_at", run_at),
        delay=0.0 if delay is None else check_seconds("delay", delay),
        key=None if key is None else check_key(key),
        key_mode="keep" if key_mode is None else check_key_mode(key_mode),
        on_complete=None if on_complete is None else check_url(on_complete, "on_complete"),
        group=None if item.get("group") is None else check_group(item["group"]),
    )
