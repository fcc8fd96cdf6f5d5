"""The HTTP API's schedule and alert routes, with their shapes: thin, over the App.

``GET/POST /api/schedules``, ``DELETE /api/schedules/{name}``,
``POST /api/schedules/{name}/pause|resume|run``, ``GET/POST /api/alerts`` and
``DELETE /api/alerts/{name}``. The shapes check types and ranges; the App checks
what only it can (cron, zone, task, window, URL) before anything is stored, and the
error mapping names the problem (400 ``invalid_schedule``/``invalid_alert``, 422
``unknown_task``, 404 for an unknown name).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..alerts import MAX_WINDOW
from ..builder import NAME_PATTERN
from ..schedules import MAX_EVERY, MIN_EVERY
from .errors import json_response
from .routing import Call, RouteTable
from .shapes import JobRef, NoQuery, QueueName, TaskName

#: The schedule and alert routes; ``routes.py`` serves and documents them with its own.
API = RouteTable()
#: Their bodies are small objects.
BODY_LIMIT = 64 * 1024

Name = Annotated[str, Meta(pattern=NAME_PATTERN.pattern, description="A name like a task's.")]
Seconds = Annotated[float, Meta(ge=MIN_EVERY, le=MAX_EVERY, description="Seconds between ticks.")]
SCHEDULE_ERRORS = (413, 422)


# -- shapes -------------------------------------------------------------------------------------------
class ScheduleRequest(Struct, forbid_unknown_fields=True):
    """A schedule to create or update: ``cron`` (in ``tz``) or ``every`` seconds."""

    name: Name
    task: TaskName
    cron: Annotated[str, Meta(description="Five fields, e.g. '0 2 * * *'.")] | None = None
    every: Annotated[float, Meta(ge=MIN_EVERY, le=MAX_EVERY, description="Seconds between ticks.")] | None = (
        None
    )
    tz: Annotated[str, Meta(description="IANA time zone of the cron expression.")] = "UTC"
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: QueueName | None = None
    missed: Literal["latest", "skip"] = "latest"


class Schedule(Struct):
    """A stored schedule and its run-time state."""

    name: str
    task: str
    tz: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str | None
    missed: Literal["latest", "skip"]
    paused: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: str | None
    cron: str | None = None
    every: float | None = None


class ScheduleList(Struct):
    """Every schedule, by name."""

    items: list[Schedule]


class AlertRequest(Struct, forbid_unknown_fields=True):
    """A failure alert to create or update."""

    name: Name
    url: Annotated[str, Meta(description="The http(s) URL the signed POST goes to.")]
    threshold: Annotated[int, Meta(ge=1, le=1_000_000, description="Failed jobs within the window.")]
    window: (
        Annotated[str, Meta(description="A duration: '5m', '1h', '1d'.")]
        | Annotated[float, Meta(gt=0, le=MAX_WINDOW, description="Seconds.")]
    )
    queue: QueueName | None = None


class Alert(Struct):
    """A stored failure alert and when it last fired."""

    name: str
    url: str
    threshold: int
    window: str
    window_seconds: float
    queue: str | None
    last_fired_at: datetime | None


class AlertList(Struct):
    """Every alert, by name."""

    items: list[Alert]


class NameDeleted(Struct):
    """A schedule or alert that was deleted."""

    name: str
    deleted: bool


# -- schedules -------------------------------------------------------------------------------------
@API.route("GET", "/api/schedules", responses={200: ScheduleList}, role="read")
async def list_schedules(call: Call[None, NoQuery]) -> Response:
    """Every schedule with its next and last run."""
    return json_response({"items": await run_in_threadpool(call.state.app.schedules)})


@API.route(
    "POST",
    "/api/schedules",
    responses={201: Schedule, 200: Schedule},
    errors=(413, 422),
    body_limit=BODY_LIMIT,
    role="admin",
)
async def create_schedule(call: Call[ScheduleRequest, NoQuery]) -> Response:
    """Create (201) or update (200) a schedule; a bad cron, zone or task stores nothing."""
    app, body = call.state.app, call.body

    def run() -> tuple[dict[str, Any], bool]:
        existed = any(row["name"] == body.name for row in app.schedules())
        row = app.schedule(
            body.name,
            task=body.task,
            cron=body.cron,
            every=body.every,
            tz=body.tz,
            args=body.args,
            kwargs=body.kwargs,
            queue=body.queue,
            missed=body.missed,
            actor=call.actor,
        )
        return row, existed

    row, existed = await run_in_threadpool(run)
    return json_response(row, 200 if existed else 201)


@API.route("DELETE", "/api/schedules/{name}", responses={200: NameDeleted}, errors=(404,), role="admin")
async def delete_schedule(call: Call[None, NoQuery]) -> Response:
    """Delete a schedule (the jobs it enqueued stay); 404 if there is none."""
    name = call.path("name")
    await run_in_threadpool(lambda: call.state.app.unschedule(name, actor=call.actor))
    return json_response({"name": name, "deleted": True})


@API.route("POST", "/api/schedules/{name}/pause", responses={200: Schedule}, errors=(404,), role="admin")
async def pause_schedule(call: Call[None, NoQuery]) -> Response:
    """Stop a schedule's ticks until it is resumed."""
    name = call.path("name")
    return json_response(
        await run_in_threadpool(lambda: call.state.app.pause_schedule(name, actor=call.actor))
    )


@API.route("POST", "/api/schedules/{name}/resume", responses={200: Schedule}, errors=(404,), role="admin")
async def resume_schedule(call: Call[None, NoQuery]) -> Response:
    """Resume a schedule from its next tick."""
    name = call.path("name")
    return json_response(
        await run_in_threadpool(lambda: call.state.app.resume_schedule(name, actor=call.actor))
    )


@API.route("POST", "/api/schedules/{name}/run", responses={201: JobRef}, errors=(404, 422), role="admin")
async def run_schedule(call: Call[None, NoQuery]) -> Response:
    """Enqueue the schedule's job now, besides its ticks."""
    name = call.path("name")
    job = await run_in_threadpool(lambda: call.state.app.run_schedule(name, actor=call.actor))
    return json_response({"id": job.id, "status": job.state}, 201)


# -- failure alerts ----------------------------------------------------------------------------------
@API.route("GET", "/api/alerts", responses={200: AlertList}, role="read")
async def list_alerts(call: Call[None, NoQuery]) -> Response:
    """Every failure alert and when it last fired."""
    return json_response({"items": await run_in_threadpool(call.state.app.alerts)})


@API.route(
    "POST",
    "/api/alerts",
    responses={201: Alert, 200: Alert},
    errors=(413, 422),
    body_limit=BODY_LIMIT,
    role="admin",
)
async def create_alert(call: Call[AlertRequest, NoQuery]) -> Response:
    """Create (201) or update (200) a failure alert; a bad URL or window stores nothing."""
    app, body = call.state.app, call.body

    def run() -> tuple[dict[str, Any], bool]:
        existed = any(row["name"] == body.name for row in app.alerts())
        row = app.alert(
            body.name,
            url=body.url,
            threshold=body.threshold,
            window=body.window,
            queue=body.queue,
            actor=call.actor,
        )
        return row, existed

    row, existed = await run_in_threadpool(run)
    return json_response(row, 200 if existed else 201)


@API.route("DELETE", "/api/alerts/{name}", responses={200: NameDeleted}, errors=(404,), role="admin")
async def delete_alert(call: Call[None, NoQuery]) -> Response:
    """Delete a failure alert; 404 if there is none."""
    name = call.path("name")
    await run_in_threadpool(lambda: call.state.app.remove_alert(name, actor=call.actor))
    return json_response({"name": name, "deleted": True})
