"""Completion callbacks: the outcome of a job naming ``on_complete`` is POSTed there."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..backends.base import ClaimedJob, NewJob, Outcome
from .request import HTTP_TASK

if TYPE_CHECKING:
    from ..app import App

#: The outcomes that call a job's ``on_complete`` URL.
CALLBACK_EVENTS = frozenset({"completed", "failed"})


def completion_payload(job: ClaimedJob, outcome: Outcome, max_result_chars: int) -> dict[str, Any]:
    """What an ``on_complete`` URL receives about a finished job."""
    result: Any = None
    omitted = False
    if outcome.result is not None:
        if len(outcome.result) > max_result_chars:
            omitted = True  # too big to travel in a callback; GET /api/jobs/{id} has it
        else:
            result = json.loads(outcome.result)
    finished = outcome.finished_at if outcome.finished_at is not None else time.time()
    payload = {
        "event": f"job.{outcome.kind}",
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "status": outcome.kind,
        "result": result,
        "error": outcome.error,
        "attempts": outcome.attempt,
        "max_attempts": job.max_attempts,
        "key": job.key,
        "finished_at": datetime.fromtimestamp(finished, UTC).isoformat(),
    }
    if omitted:
        payload["result_omitted"] = True
    return payload


def completion_callbacks(app: App, job: ClaimedJob, outcome: Outcome) -> list[NewJob]:
    """The ``conveyor.http`` job that POSTs a finished job's outcome to its ``on_complete``.

    Empty unless the job has ``on_complete`` and the outcome is completed or failed.
    The worker stores it together with the outcome (``Outcome.follow_ups``), so a crash
    can never record the outcome and lose its callback.
    """
    if not job.on_complete or outcome.kind not in CALLBACK_EVENTS:
        return []
    payload = completion_payload(job, outcome, app.settings.max_payload_bytes // 2)
    item = {
        "task": HTTP_TASK,
        "kwargs": {"url": job.on_complete, "json": payload},
        # The job's own queue: the workers that ran the job serve its callback too.
        "queue": job.queue,
        "priority": job.priority,
        # One callback per claim, even if an outcome is written twice.
        "key": f"conveyor.on_complete:{job.id}:{job.lease_token}",
    }
    return app.prepare([item])
