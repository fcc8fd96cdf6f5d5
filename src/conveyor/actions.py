"""The operators' action trail: who did what to which jobs, as the App records it.

Every admin write that goes through the App (retry, cancel, delete, purge, the bulk
actions, queue settings and pauses; the HTTP API's ``process``) is stored with its
:class:`Actor`: the API key's role and name (never the key itself) for the HTTP API
and the dashboard, ``python`` for code calling the App, ``cli`` for the ``conveyor``
command. An action that changed nothing (a purge or a bulk action that matched no job)
is not recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .backends.base import JobQuery, NewAction

#: The longest error text a filter may carry.
MAX_ERROR_FILTER = 1000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``name`` is what the trail shows (``admin:ops``, ``python``), ``role`` the key's role."""

    name: str
    role: str | None = None


#: Code calling the App directly.
PYTHON = Actor("python")
#: The ``conveyor`` command.
CLI = Actor("cli")


@dataclass(frozen=True, slots=True)
class BulkDeleted:
    """What ``App.delete_many`` did (or, with ``dry_run``, would do)."""

    #: Jobs deleted (or that would be).
    deleted: int
    #: Matching jobs left alone because a worker is running them.
    skipped: int


def check_error_filter(value: object) -> str:
    """The error-text filter: a non-empty string of at most :data:`MAX_ERROR_FILTER` characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ERROR_FILTER:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:60] + "...'"
        raise ValueError(f"error must be text of 1 to {MAX_ERROR_FILTER} characters, got {shown}")
    return value


def filter_detail(query: JobQuery) -> dict[str, Any]:
    """The filters a bulk action was given (only those set), as its trail shows them."""
    detail: dict[str, Any] = {}
    for name in ("status", "queue", "task", "error", "group"):
        value = getattr(query, name)
        if value is not None:
            detail[name] = value
    for name in ("created_after", "created_before"):
        value = getattr(query, name)
        if value is not None:
            detail[name] = datetime.fromtimestamp(value, UTC).isoformat()
    return detail


def new_action(
    actor: Actor, action: str, job_ids: tuple[str, ...] | list[str], count: int, **detail: Any
) -> NewAction:
    """The record of one action; ``detail`` (filters, edits) is stored as JSON."""
    text = json.dumps(detail, separators=(",", ":")) if detail else None
    return NewAction(actor.name, action, actor.role, tuple(job_ids), text, count)
