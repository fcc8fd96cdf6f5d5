"""The HTTP API's handlers: thin, over the App; input checks in ``inputs``, errors in ``errors``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..states import PURGEABLE, parse_state
from ..tracing import incoming
from ..worker import Worker
from .auth import same_loopback_origin
from .errors import ApiError, bad_request, error_response, from_exception, json_response
from .inputs import (
    MAX_OFFSET,
    MAX_PAGE,
    Query,
    check_job_id,
    check_job_items,
    json_object,
    parse_json,
    parse_time,
    read_body,
    reject_unknown,
)
from .metrics import CONTENT_TYPE
from .openapi import openapi_document
from .state import ServerState

log = logging.getLogger("conveyor.server")

Handler = Callable[[Request, ServerState], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]

#: Limits for the small JSON bodies of admin routes (retry edits may carry a full payload).
ADMIN_BODY_LIMIT = 64 * 1024
MAX_BATCH_SIZE = 500


def authenticate(request: Request, state: ServerState) -> None:
    """401 unless ``x-api-key`` matches a configured key (compared in constant time)."""
    if not state.keys.enabled:
        if not same_loopback_origin(request.headers.get("host"), request.headers.get("origin")):
            raise ApiError(
                403,
                "forbidden",
                "this server has no API key and answers only same-origin requests to a loopback host; "
                "configure CONVEYOR_API_KEYS to serve other clients",
            )
        return
    presented = next((value for name, value in request.scope["headers"] if name == b"x-api-key"), None)
    if presented is None:
        raise ApiError(401, "unauthorized", "missing x-api-key header: every /api route needs an API key")
    if not state.keys.matches(presented):
        raise ApiError(401, "unauthorized", "the x-api-key header does not match any configured API key")


def endpoint(route: str, *, auth: bool = True) -> Callable[[Handler], Endpoint]:
    """Wrap a handler: authentication, the JSON error shape, and request metrics."""

    def wrap(handler: Handler) -> Endpoint:
        async def run(request: Request) -> Response:
            state: ServerState = request.app.state.conveyor
            started = time.perf_counter()
            try:
                if auth:
                    authenticate(request, state)
                response = await handler(request, state)
            except Exception as exc:
                error = from_exception(exc)
                if error is None:
                    log.exception("%s %s failed", request.method, route)
                    error = ApiError(500, "internal_error", "internal error; the server log has the details")
                response = error_response(error)
            state.metrics.observe(route, request.method, response.status_code, time.perf_counter() - started)
            return response

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    return wrap


# -- jobs --------------------------------------------------------------------------------------------
@endpoint("/api/jobs")
async def create_jobs(request: Request, state: ServerState) -> Response:
    """Enqueue one job (an object) or a batch (an array): 201, or 200 when every key matched a job."""
    body = await read_body(request, state.max_body)
    items, batch = check_job_items(parse_json(body))
    try:
        # Jobs enqueued over HTTP join the caller's trace (its W3C traceparent header).
        with incoming(request.headers.get("traceparent")):
            jobs = state.prepare(items)
    except (TypeError, ValueError) as exc:
        # The model's own checks (key length, URL, payload size...) speak for the client's input.
        raise from_exception(exc, input_checks=True) or exc from None
    results = await state.store(jobs)
    status = 201 if any(r.created for r in results) else 200
    if not batch:
        return json_response({"id": results[0].id, "status": results[0].state}, status)
    return json_response(
        {"items": [{"id": r.id, "status": r.state, "created": r.created} for r in results]}, status
    )


@endpoint("/api/jobs/{job_id}")
async def get_job(request: Request, state: ServerState) -> Response:
    """One job with its attempt records."""
    job_id = check_job_id(request.path_params["job_id"])
    record = await run_in_threadpool(state.app.get, job_id)
    return json_response(record.to_dict())


# -- the queue ---------------------------------------------------------------------------------------
@endpoint("/api/queue")
async def list_queue(request: Request, state: ServerState) -> Response:
    """A page of jobs, newest first, filtered by status, queue, task and creation time."""
    query = Query(request, ("status", "queue", "task", "limit", "offset", "created_after", "created_before"))
    limit = query.integer("limit", 50, 0, MAX_PAGE)
    offset = query.integer("offset", 0, 0, MAX_OFFSET)
    page = await run_in_threadpool(
        state.app.jobs,
        status=query.status(),
        queue=query.name("queue", "queue"),
        task=query.name("task", "task"),
        limit=limit,
        offset=offset,
        created_after=query.time("created_after"),
        created_before=query.time("created_before"),
    )
    items = [job.to_dict(with_attempts=False) for job in page]
    return json_response({"items": items, "total": page.total, "limit": limit, "offset": offset})


@endpoint("/api/queue/stats")
async def queue_stats(request: Request, state: ServerState) -> Response:
    """Counts by status, overall and per queue, and the age of the oldest due pending job."""
    Query(request, ())
    return json_response(await run_in_threadpool(state.app.stats))


@endpoint("/api/queue/{job_id}/retry")
async def retry_job(request: Request, state: ServerState) -> Response:
    """A failed or cancelled job back to pending (optionally with edited args/kwargs); 409 otherwise."""
    job_id = check_job_id(request.path_params["job_id"])
    edits = await json_object(request, state.max_body, required=False)
    reject_unknown(edits, ("args", "kwargs"), "the request body")
    args, kwargs = edits.get("args"), edits.get("kwargs")
    if args is not None and not isinstance(args, list):
        raise bad_request(f"args must be a JSON array, got {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise bad_request(f"kwargs must be a JSON object, got {type(kwargs).__name__}")
    job = await run_in_threadpool(lambda: state.app.resubmit(job_id, args=args, kwargs=kwargs))
    return json_response(job.to_dict())


@endpoint("/api/queue/{job_id}/cancel")
async def cancel_job(request: Request, state: ServerState) -> Response:
    """Cancel a waiting job at once, or ask a running one to stop; 409 if it already finished."""
    job_id = check_job_id(request.path_params["job_id"])
    job = await run_in_threadpool(state.app.cancel, job_id)
    return json_response(job.to_dict())


@endpoint("/api/queue/{job_id}")
async def delete_job(request: Request, state: ServerState) -> Response:
    """Delete a job that is not running, with its audit records; 409 while it runs."""
    job_id = check_job_id(request.path_params["job_id"])
    await run_in_threadpool(state.app.delete, job_id)
    return json_response({"id": job_id, "deleted": True})


@endpoint("/api/queue/purge")
async def purge(request: Request, state: ServerState) -> Response:
    """Delete finished jobs in ``status`` that finished before ``olderThan``: ``{purged: N}``."""
    data = await json_object(request, ADMIN_BODY_LIMIT)
    reject_unknown(data, ("status", "olderThan"), "the request body")
    for field in ("status", "olderThan"):
        if field not in data:
            raise bad_request(
                f"the request body needs '{field}': "
                '{"status": "completed"|"failed"|"cancelled", "olderThan": "2024-01-01T00:00:00Z"}'
            )
    status = data["status"]
    if not isinstance(status, str):
        raise bad_request(f"status must be a string, got {type(status).__name__}")
    parse_state(status, PURGEABLE)
    before = parse_time(data["olderThan"], "olderThan")

    def run() -> int:
        age = max(0.0, state.app.backend.now() - before)
        return state.app.purge(status, older_than=age)

    return json_response({"purged": await run_in_threadpool(run)})


@endpoint("/api/queue/process")
async def process(request: Request, state: ServerState) -> Response:
    """Process one batch of due jobs inside this request (for cron): the counts of what happened."""
    query = Query(request, ("batchSize",))
    batch_size = query.integer("batchSize", 10, 1, MAX_BATCH_SIZE)

    def run() -> dict[str, int]:
        worker = Worker(state.app, install_signal_handlers=False)
        return worker.process_batch(batch_size).to_dict()

    return json_response(await run_in_threadpool(run))


# -- audits ------------------------------------------------------------------------------------------
@endpoint("/api/audits")
async def audits(request: Request, state: ServerState) -> Response:
    """Attempt records, newest first, for every job or one (``job_id``)."""
    query = Query(request, ("job_id", "limit", "offset"))
    job_id = query.text("job_id")
    limit = query.integer("limit", 50, 0, MAX_PAGE)
    offset = query.integer("offset", 0, 0, MAX_OFFSET)

    def run() -> list[Any]:
        if job_id is not None:
            state.app.get(check_job_id(job_id))  # 404 for a job that does not exist
        return state.app.audits(job_id, limit, offset)

    records = await run_in_threadpool(run)
    return json_response({"items": [r.to_dict() for r in records], "limit": limit, "offset": offset})


@endpoint("/api/workers")
async def workers(request: Request, state: ServerState) -> Response:
    """The live workers: id, host, pid, queues, concurrency, running jobs, started and last seen."""
    Query(request, ())  # no parameters: an unknown one is a 400
    return json_response({"items": await run_in_threadpool(state.app.workers)})


# -- no key needed -----------------------------------------------------------------------------------
@endpoint("/healthz", auth=False)
async def healthz(request: Request, state: ServerState) -> Response:
    """200 when the backend answers, 503 when it does not."""
    try:
        await run_in_threadpool(state.app.backend.get, "0" * 32)
    except Exception as exc:  # noqa: BLE001 - the answer is the health check's result
        log.warning("health check: backend unavailable: %s", type(exc).__name__)
        message = f"backend unavailable: {type(exc).__name__}"
        return json_response(
            {"status": "unavailable", "error": {"code": "unavailable", "message": message}}, 503
        )
    return json_response({"status": "ok"})


@endpoint("/metrics", auth=False)
async def metrics(request: Request, state: ServerState) -> Response:
    """Prometheus exposition: job counts by queue and status, queue lag, request counts."""
    return Response(await run_in_threadpool(state.metrics.render), media_type=CONTENT_TYPE)


@endpoint("/openapi.json", auth=False)
async def openapi(request: Request, state: ServerState) -> Response:
    """The OpenAPI 3.1 document of this API."""
    return json_response(openapi_document(state.app.tasks))


_DASHBOARD: str | None = None
#: The page loads its style and modules from /assets only; no inline script, no eval, no other origin.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@endpoint("/", auth=False)
async def dashboard(request: Request, state: ServerState) -> Response:
    """The dashboard page; its data requests carry the API key the user types in."""
    global _DASHBOARD
    if _DASHBOARD is None:
        _DASHBOARD = resources.files("conveyor.server").joinpath("static/index.html").read_text("utf-8")
    return HTMLResponse(
        _DASHBOARD,
        headers={"Content-Security-Policy": DASHBOARD_CSP},
    )


ROUTES = [
    Route("/", dashboard, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/api/jobs", create_jobs, methods=["POST"]),
    Route("/api/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/api/queue", list_queue, methods=["GET"]),
    Route("/api/queue/stats", queue_stats, methods=["GET"]),
    Route("/api/queue/purge", purge, methods=["POST"]),
    Route("/api/queue/process", process, methods=["POST"]),
    Route("/api/queue/{job_id}/retry", retry_job, methods=["POST"]),
    Route("/api/queue/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/api/queue/{job_id}", delete_job, methods=["DELETE"]),
    Route("/api/audits", audits, methods=["GET"]),
    Route("/api/workers", workers, methods=["GET"]),
]
