"""The HTTP API's handlers: thin, over the App; shapes in ``shapes``, declared with ``API.route``."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from ..actions import new_action
from ..builder import check_name
from ..tracing import incoming
from ..worker import Worker
from .errors import ApiError, from_exception, json_response
from .inputs import check_job_id
from .maintenance import API as MAINTENANCE_API
from .metrics import CONTENT_TYPE
from .openapi import build_document
from .routing import Call, RouteTable
from .shapes import (
    ActionPage,
    ActionQuery,
    AuditPage,
    AuditQuery,
    BulkDeleteRequest,
    BulkRetryRequest,
    Deleted,
    DeletedMany,
    Health,
    JobBatch,
    JobDetail,
    JobListQuery,
    JobPage,
    JobRef,
    JobRefs,
    JobRequest,
    KeyInfo,
    NoQuery,
    Processed,
    ProcessQuery,
    Purged,
    PurgeRequest,
    QueueInfo,
    QueueList,
    QueuePatch,
    Resubmit,
    RetriedMany,
    Stats,
    Unhealthy,
    Workers,
)
from .throughput import API as THROUGHPUT_API

log = logging.getLogger("conveyor.server")

#: The declared routes; ``ROUTES`` below is what Starlette serves, ``openapi`` documents the same.
API = RouteTable()

#: Limit for the small JSON bodies of admin routes (retry edits may carry a full payload).
ADMIN_BODY_LIMIT = 64 * 1024


# -- jobs --------------------------------------------------------------------------------------------
@API.route(
    "POST",
    "/api/jobs",
    responses={201: JobRef | JobRefs, 200: JobRef | JobRefs},
    errors=(413, 422),
    role="write",
)
async def create_jobs(call: Call[JobRequest | JobBatch, NoQuery]) -> Response:
    """Enqueue one job (an object) or a batch (an array): 201, or 200 when every key matched a job."""
    state = call.state
    batch = isinstance(call.body, list)
    items = [job.item() for job in call.body] if isinstance(call.body, list) else [call.body.item()]
    try:
        # Jobs enqueued over HTTP join the caller's trace (its W3C traceparent header).
        with incoming(call.request.headers.get("traceparent")):
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


@API.route("GET", "/api/jobs/{job_id}", responses={200: JobDetail}, errors=(404,))
async def get_job(call: Call[None, NoQuery]) -> Response:
    """One job with its attempt records."""
    state = call.state
    job_id = check_job_id(call.path("job_id"))
    record = await run_in_threadpool(state.app.get, job_id)
    return json_response(record.to_dict())


# -- the queue ---------------------------------------------------------------------------------------
@API.route("GET", "/api/queue", responses={200: JobPage}, errors=(422,))
async def list_queue(call: Call[None, JobListQuery]) -> Response:
    """A page of jobs, newest first, filtered by status, queue, task, error text and creation time."""
    state, query = call.state, call.query
    page = await run_in_threadpool(
        state.app.jobs,
        status=query.status,
        queue=query.queue,
        task=query.task,
        limit=query.limit,
        offset=query.offset,
        created_after=query.created_after,
        created_before=query.created_before,
        error=query.error,
        group=query.group,
    )
    items = [job.to_dict(with_attempts=False) for job in page]
    return json_response({"items": items, "total": page.total, "limit": query.limit, "offset": query.offset})


@API.route("GET", "/api/queue/stats", responses={200: Stats})
async def queue_stats(call: Call[None, NoQuery]) -> Response:
    """Counts by status, overall and per queue, and the age of the oldest due pending job."""
    return json_response(await run_in_threadpool(call.state.app.stats))


@API.route(
    "POST", "/api/queue/purge", responses={200: Purged}, errors=(413, 422), body_limit=ADMIN_BODY_LIMIT
)
async def purge(call: Call[PurgeRequest, NoQuery]) -> Response:
    """Delete finished jobs in ``status`` that finished before ``older_than`` (a time or an age)."""
    state, request = call.state, call.body

    def run() -> int:
        age = request.older_than.age_at(state.app.backend.now())
        return state.app.purge(request.status, older_than=age, actor=call.actor)

    return json_response({"purged": await run_in_threadpool(run)})


@API.route("POST", "/api/queue/process", responses={200: Processed}, role="write")
async def process(call: Call[None, ProcessQuery]) -> Response:
    """Process one batch of due jobs inside this request (for cron): the counts of what happened."""
    state, batch_size = call.state, call.query.batch_size

    def run() -> dict[str, int]:
        worker = Worker(state.app, install_signal_handlers=False)
        counts = worker.process_batch(batch_size).to_dict()
        if counts["processed"]:
            action = new_action(
                call.actor, "process", (), counts["processed"], batch_size=batch_size, **counts
            )
            state.app.record_action(action)
        return counts

    return json_response(await run_in_threadpool(run))


@API.route("POST", "/api/queue/retry", responses={200: RetriedMany}, errors=(413, 422), role="write")
async def retry_matching(call: Call[BulkRetryRequest, NoQuery]) -> Response:
    """Resubmit every failed (or cancelled) job matching the filters; ``dry_run`` only counts them."""
    body = call.body

    def run() -> int:
        return call.state.app.resubmit_many(
            body.status,
            body.queue,
            body.task,
            error=body.error,
            created_after=body.created_after,
            created_before=body.created_before,
            dry_run=body.dry_run,
            actor=call.actor,
        )

    count = await run_in_threadpool(run)
    done = 0 if body.dry_run else count
    return json_response({"dry_run": body.dry_run, "matched": count, "resubmitted": done})


@API.route("POST", "/api/queue/delete", responses={200: DeletedMany}, errors=(413, 422))
async def delete_matching(call: Call[BulkDeleteRequest, NoQuery]) -> Response:
    """Delete every job matching the filters (one at least) but running ones; ``dry_run`` only counts."""
    body = call.body

    def run() -> Any:
        return call.state.app.delete_many(
            body.status,
            body.queue,
            body.task,
            error=body.error,
            created_after=body.created_after,
            created_before=body.created_before,
            dry_run=body.dry_run,
            actor=call.actor,
        )

    try:
        outcome = await run_in_threadpool(run)
    except ValueError as exc:
        raise ApiError(422, "no_filter", str(exc)) from None
    done = 0 if body.dry_run else outcome.deleted
    return json_response(
        {"dry_run": body.dry_run, "matched": outcome.deleted, "deleted": done, "skipped": outcome.skipped}
    )


@API.route(
    "POST", "/api/queue/{job_id}/retry", responses={200: JobDetail}, errors=(404, 409, 413), role="write"
)
async def retry_job(call: Call[Resubmit | None, NoQuery]) -> Response:
    """A failed or cancelled job back to pending (optionally with edited args/kwargs); 409 otherwise."""
    state = call.state
    job_id = check_job_id(call.path("job_id"))
    edits = call.body or Resubmit()
    args, kwargs = edits.args, edits.kwargs
    job = await run_in_threadpool(
        lambda: state.app.resubmit(job_id, args=args, kwargs=kwargs, actor=call.actor)
    )
    return json_response(job.to_dict())


@API.route("POST", "/api/queue/{job_id}/cancel", responses={200: JobDetail}, errors=(404, 409), role="write")
async def cancel_job(call: Call[None, NoQuery]) -> Response:
    """Cancel a waiting job at once, or ask a running one to stop; 409 if it already finished."""
    state = call.state
    job_id = check_job_id(call.path("job_id"))
    job = await run_in_threadpool(lambda: state.app.cancel(job_id, actor=call.actor))
    return json_response(job.to_dict())


@API.route("DELETE", "/api/queue/{job_id}", responses={200: Deleted}, errors=(404, 409))
async def delete_job(call: Call[None, NoQuery]) -> Response:
    """Delete a job that is not running, with its audit records; 409 while it runs."""
    state = call.state
    job_id = check_job_id(call.path("job_id"))
    await run_in_threadpool(lambda: state.app.delete(job_id, actor=call.actor))
    return json_response({"id": job_id, "deleted": True})


# -- flow control ------------------------------------------------------------------------------------
@API.route("GET", "/api/queues", responses={200: QueueList}, role="read")
async def list_queues(call: Call[None, NoQuery]) -> Response:
    """Every queue with jobs or settings: its limits, whether paused or throttled now, its counts."""
    return json_response({"items": await run_in_threadpool(call.state.app.queues)})


def _queue_name(call: Call[Any, Any]) -> str:
    return check_name("queue", call.path("name"))


@API.route(
    "PATCH",
    "/api/queues/{name}",
    responses={200: QueueInfo},
    errors=(413, 422),
    body_limit=ADMIN_BODY_LIMIT,
    role="admin",
)
async def configure_queue(call: Call[QueuePatch, NoQuery]) -> Response:
    """Change a queue's limits (null removes one, absent ones stay); applies from the next claim."""
    name, changes = _queue_name(call), call.body.changes()
    app, actor = call.state.app, call.actor
    return json_response(await run_in_threadpool(lambda: app.configure_queue(name, actor=actor, **changes)))


@API.route("POST", "/api/queues/{name}/pause", responses={200: QueueInfo}, errors=(422,), role="admin")
async def pause_queue(call: Call[None, NoQuery]) -> Response:
    """Stop claims from the queue; enqueue still works and running jobs finish."""
    name = _queue_name(call)
    return json_response(await run_in_threadpool(lambda: call.state.app.pause_queue(name, actor=call.actor)))


@API.route("POST", "/api/queues/{name}/resume", responses={200: QueueInfo}, errors=(422,), role="admin")
async def resume_queue(call: Call[None, NoQuery]) -> Response:
    """Let workers claim from the queue again."""
    name = _queue_name(call)
    return json_response(await run_in_threadpool(lambda: call.state.app.resume_queue(name, actor=call.actor)))


# -- audits ------------------------------------------------------------------------------------------
@API.route("GET", "/api/audits", responses={200: AuditPage}, errors=(404,))
async def audits(call: Call[None, AuditQuery]) -> Response:
    """Attempt records, newest first, for every job or one (``job_id``)."""
    state, query = call.state, call.query
    job_id, limit, offset = query.job_id, query.limit, query.offset

    def run() -> list[Any]:
        if job_id is not None:
            state.app.get(check_job_id(job_id))  # 404 for a job that does not exist
        return state.app.audits(job_id, limit, offset)

    records = await run_in_threadpool(run)
    return json_response({"items": [r.to_dict() for r in records], "limit": limit, "offset": offset})


# -- the action trail and the caller's key -----------------------------------------------------------
@API.route("GET", "/api/actions", responses={200: ActionPage}, errors=(404,))
async def actions(call: Call[None, ActionQuery]) -> Response:
    """Who retried, cancelled, deleted or purged what, newest first; for every job or one (``job_id``)."""
    state, query = call.state, call.query
    job_id, limit, offset = query.job_id, query.limit, query.offset

    def run() -> list[Any]:
        if job_id is not None:
            check_job_id(job_id)  # a deleted job keeps its trail: no 404 for a well-formed id
        return state.app.actions(job_id, limit, offset)

    records = await run_in_threadpool(run)
    return json_response({"items": [r.to_dict() for r in records], "limit": limit, "offset": offset})


@API.route("GET", "/api/key", responses={200: KeyInfo})
async def key_info(call: Call[None, NoQuery]) -> Response:
    """The calling key's role and the name the action trail gives it (the dashboard shows it)."""
    return json_response({"role": call.actor.role, "actor": call.actor.name})


# -- workers -----------------------------------------------------------------------------------------
@API.route("GET", "/api/workers", responses={200: Workers})
async def workers(call: Call[None, NoQuery]) -> Response:
    """The live workers: id, host, pid, queues, concurrency, running jobs, started and last seen."""
    return json_response({"items": await run_in_threadpool(call.state.app.workers)})


# -- no key needed -----------------------------------------------------------------------------------
@API.route("GET", "/healthz", responses={200: Health, 503: Unhealthy}, auth=False)
async def healthz(call: Call[None, None]) -> Response:
    """200 when the backend answers, 503 when it does not."""
    state = call.state
    try:
        await run_in_threadpool(state.app.backend.get, "0" * 32)
    except Exception as exc:  # noqa: BLE001 - the answer is the health check's result
        log.warning("health check: backend unavailable: %s", type(exc).__name__)
        message = f"backend unavailable: {type(exc).__name__}"
        return json_response(
            {"status": "unavailable", "error": {"code": "unavailable", "message": message}}, 503
        )
    return json_response({"status": "ok"})


@API.route("GET", "/metrics", responses={200: str}, auth=False, media_type="text/plain")
async def metrics(call: Call[None, None]) -> Response:
    """Prometheus exposition: job counts by queue and status, queue lag, request counts."""
    return Response(await run_in_threadpool(call.state.metrics.render), media_type=CONTENT_TYPE)


@lru_cache(maxsize=8)
def _document(task_names: tuple[str, ...] | None) -> dict[str, Any]:
    return build_document(API.routes, task_names)


def openapi_document(task_names: Iterable[str] | None = None) -> dict[str, Any]:
    """The OpenAPI document of the declared routes (a fresh copy: callers may change it).

    ``task_names`` lists the accepted tasks.
    """
    return copy.deepcopy(_document(None if task_names is None else tuple(sorted(task_names))))


@API.route("GET", "/openapi.json", responses={200: dict[str, Any]}, auth=False)
async def openapi(call: Call[None, None]) -> Response:
    """The OpenAPI 3.1 document of this API."""
    return json_response(openapi_document(call.state.app.tasks))


_DASHBOARD: str | None = None
#: The page loads its style and modules from /assets only; no inline script, no eval, no other origin.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@API.route("GET", "/", responses={200: str}, auth=False, media_type="text/html")
async def dashboard(call: Call[None, None]) -> Response:
    """The dashboard page; its data requests carry the API key the user types in."""
    global _DASHBOARD
    if _DASHBOARD is None:
        _DASHBOARD = resources.files("conveyor.server").joinpath("static/index.html").read_text("utf-8")
    return HTMLResponse(
        _DASHBOARD,
        headers={"Content-Security-Policy": DASHBOARD_CSP},
    )


# The schedule, alert and throughput routes are part of the one table: served, documented and
# role-checked alike.
API.include(MAINTENANCE_API)
API.include(THROUGHPUT_API)
ROUTES = API.starlette_routes()
