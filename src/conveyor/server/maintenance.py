"""The HTTP API's schedule and alert routes: thin, over the App's schedule and alert methods.

``GET/POST /api/schedules``, ``DELETE /api/schedules/{name}``,
``POST /api/schedules/{name}/pause|resume|run``, ``GET/POST /api/alerts`` and
``DELETE /api/alerts/{name}``. Bad input is refused before anything is stored: the
App checks cron, zone, task, window and URL, and the error mapping names the problem.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import bad_request, json_response
from .inputs import json_object, reject_unknown
from .routes import ADMIN_BODY_LIMIT, endpoint
from .state import ServerState

SCHEDULE_FIELDS = ("name", "task", "cron", "every", "tz", "args", "kwargs", "queue", "missed")
ALERT_FIELDS = ("name", "url", "threshold", "window", "queue")


def _name(request: Request) -> str:
    return str(request.path_params["name"])


def _fields(data: dict[str, Any], required: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
    reject_unknown(data, allowed, "the request body")
    missing = [field for field in required if field not in data]
    if missing:
        raise bad_request(f"the request body needs {', '.join(repr(f) for f in missing)}")
    for field in ("args",):
        if data.get(field) is not None and not isinstance(data[field], list):
            raise bad_request(f"{field} must be a JSON array, got {type(data[field]).__name__}")
    if data.get("kwargs") is not None and not isinstance(data["kwargs"], dict):
        raise bad_request(f"kwargs must be a JSON object, got {type(data['kwargs']).__name__}")
    return data


# -- schedules -------------------------------------------------------------------------------------
@endpoint("/api/schedules")
async def list_schedules(request: Request, state: ServerState) -> Response:
    """Every schedule with its next and last run."""
    return json_response({"items": await run_in_threadpool(state.app.schedules)})


@endpoint("/api/schedules")
async def create_schedule(request: Request, state: ServerState) -> Response:
    """Create (201) or update (200) a schedule; bad cron, zone or task: nothing stored."""
    data = _fields(await json_object(request, ADMIN_BODY_LIMIT), ("name", "task"), SCHEDULE_FIELDS)
    options = {k: v for k, v in data.items() if k not in ("name", "task") and v is not None}

    def run() -> tuple[dict[str, Any], bool]:
        existed = any(row["name"] == data["name"] for row in state.app.schedules())
        return state.app.schedule(data["name"], task=data["task"], **options), existed

    row, existed = await run_in_threadpool(run)
    return json_response(row, 200 if existed else 201)


@endpoint("/api/schedules/{name}")
async def delete_schedule(request: Request, state: ServerState) -> Response:
    """Delete a schedule (the jobs it enqueued stay); 404 if there is none."""
    name = _name(request)
    await run_in_threadpool(state.app.unschedule, name)
    return json_response({"name": name, "deleted": True})


@endpoint("/api/schedules/{name}/pause")
async def pause_schedule(request: Request, state: ServerState) -> Response:
    """Stop a schedule's ticks until resumed."""
    return json_response(await run_in_threadpool(state.app.pause_schedule, _name(request)))


@endpoint("/api/schedules/{name}/resume")
async def resume_schedule(request: Request, state: ServerState) -> Response:
    """Resume a schedule from its next tick."""
    return json_response(await run_in_threadpool(state.app.resume_schedule, _name(request)))


@endpoint("/api/schedules/{name}/run")
async def run_schedule(request: Request, state: ServerState) -> Response:
    """Enqueue the schedule's job now, besides its ticks: 201 ``{id, status}``."""
    job = await run_in_threadpool(state.app.run_schedule, _name(request))
    return json_response({"id": job.id, "status": job.state}, 201)


# -- failure alerts ----------------------------------------------------------------------------------
@endpoint("/api/alerts")
async def list_alerts(request: Request, state: ServerState) -> Response:
    """Every failure alert and when it last fired."""
    return json_response({"items": await run_in_threadpool(state.app.alerts)})


@endpoint("/api/alerts")
async def create_alert(request: Request, state: ServerState) -> Response:
    """Create (201) or update (200) an alert; a bad URL, threshold or window: nothing stored."""
    data = _fields(
        await json_object(request, ADMIN_BODY_LIMIT), ("name", "url", "threshold", "window"), ALERT_FIELDS
    )

    def run() -> tuple[dict[str, Any], bool]:
        existed = any(row["name"] == data["name"] for row in state.app.alerts())
        row = state.app.alert(
            data["name"],
            url=data["url"],
            threshold=data["threshold"],
            window=data["window"],
            queue=data.get("queue"),
        )
        return row, existed

    row, existed = await run_in_threadpool(run)
    return json_response(row, 200 if existed else 201)


@endpoint("/api/alerts/{name}")
async def delete_alert(request: Request, state: ServerState) -> Response:
    """Delete an alert; 404 if there is none."""
    name = _name(request)
    await run_in_threadpool(state.app.remove_alert, name)
    return json_response({"name": name, "deleted": True})


ROUTES = [
    Route("/api/schedules", list_schedules, methods=["GET"]),
    Route("/api/schedules", create_schedule, methods=["POST"]),
    Route("/api/schedules/{name}", delete_schedule, methods=["DELETE"]),
    Route("/api/schedules/{name}/pause", pause_schedule, methods=["POST"]),
    Route("/api/schedules/{name}/resume", resume_schedule, methods=["POST"]),
    Route("/api/schedules/{name}/run", run_schedule, methods=["POST"]),
    Route("/api/alerts", list_alerts, methods=["GET"]),
    Route("/api/alerts", create_alert, methods=["POST"]),
    Route("/api/alerts/{name}", delete_alert, methods=["DELETE"]),
]
