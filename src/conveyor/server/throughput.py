"""The HTTP API's throughput route, with its shapes: ``GET /api/throughput``.

Jobs completed and failed per minute over the last ``minutes`` minutes (the backend's
``throughput``; what counts is written once in :mod:`conveyor.backends.throughput`).
The dashboard's overview draws it as a chart when the server has this route.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..backends.throughput import DEFAULT_MINUTES, MAX_MINUTES
from .errors import json_response
from .routing import Call, RouteTable
from .shapes import QueueName

#: The throughput route; ``routes.py`` serves and documents it with its own.
API = RouteTable()


class ThroughputQuery(Struct, forbid_unknown_fields=True, frozen=True):
    """The window of ``GET /api/throughput`` and an optional queue."""

    minutes: Annotated[
        int, Meta(ge=1, le=MAX_MINUTES, description="How many minutes, ending with the current one.")
    ] = DEFAULT_MINUTES
    queue: Annotated[QueueName, Meta(description="Only jobs of this queue.")] | None = None


class MinuteCounts(Struct):
    """One minute: when it starts, and the jobs that completed and failed (for good) in it."""

    start: datetime
    completed: int
    failed: int


class Throughput(Struct):
    """Completed and failed jobs per minute, oldest minute first, every minute of the window present.

    ``failed`` counts jobs that entered ``failed`` (attempts spent, a permanent error, a
    lost worker on the last attempt), not retried attempts; ``now`` is the backend's clock.
    """

    queue: str | None
    now: datetime
    completed: int
    failed: int
    minutes: list[MinuteCounts]


@API.route("GET", "/api/throughput", responses={200: Throughput}, errors=(422,), role="read")
async def throughput(call: Call[None, ThroughputQuery]) -> Response:
    """Jobs completed and failed in each of the last ``minutes`` minutes (default 60), one queue or all."""
    minutes, queue = call.query.minutes, call.query.queue
    window = await run_in_threadpool(call.state.app.throughput, minutes, queue)
    return json_response(window.to_dict())
