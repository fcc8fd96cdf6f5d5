"""A signup web app that hands the welcome email to Conveyor and answers at once.

    uvicorn webapp:app --port 8001

``POST /signup {"email": ...}`` stores the user, enqueues a ``conveyor.http`` job over
Conveyor's HTTP API (the receiver will be called back to send the email) and
answers in a few milliseconds. ``POST /hooks/done`` is the ``on_complete`` URL:
Conveyor tells it, signed, when the welcome job completed or failed for good.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conveyor import InvalidSignature, verify_signature

CONVEYOR_API = os.environ.get("CONVEYOR_API", "http://127.0.0.1:8000")
CONVEYOR_API_KEY = os.environ.get("CONVEYOR_API_KEY", "")
RECEIVER_URL = os.environ.get("RECEIVER_URL", "http://127.0.0.1:8002")
WEBAPP_URL = os.environ.get("WEBAPP_URL", "http://127.0.0.1:8001")
SIGNING_SECRET = os.environ.get("CONVEYOR_SIGNING_SECRET", "")

log = logging.getLogger("signup")
users: dict[int, dict[str, Any]] = {}
welcome_jobs: dict[str, int] = {}  # job id -> user id
next_id = itertools.count(1)
queue = httpx.AsyncClient(base_url=CONVEYOR_API, headers={"x-api-key": CONVEYOR_API_KEY}, timeout=5)


async def signup(request: Request) -> JSONResponse:
    """Create the user, enqueue the welcome email, answer at once."""
    started = time.perf_counter()
    data = await request.json()
    email = data.get("email") if isinstance(data, dict) else None
    if not isinstance(email, str) or "@" not in email:
        return JSONResponse({"error": 'send {"email": "you@example.com"}'}, status_code=400)
    user_id = next(next_id)
    users[user_id] = {"id": user_id, "email": email, "welcome": "queued"}
    job = {
        "task": "conveyor.http",
        "queue": "emails",
        "kwargs": {
            "url": f"{RECEIVER_URL}/hooks/welcome-email",
            "json": {"user_id": user_id, "email": email},
        },
        "key": f"welcome:{user_id}",  # a retried signup never sends two welcomes
        "max_attempts": 6,
        "on_complete": f"{WEBAPP_URL}/hooks/done",
    }
    response = await queue.post("/api/jobs", json=job)
    response.raise_for_status()
    welcome_jobs[response.json()["id"]] = user_id
    took_ms = (time.perf_counter() - started) * 1000
    return JSONResponse({"user": users[user_id], "job": response.json(), "took_ms": round(took_ms, 1)}, 201)


async def done(request: Request) -> JSONResponse:
    """Conveyor's report on a finished welcome job: record it on the user."""
    body = await request.body()
    try:
        verify_signature(body, request.headers.get("x-conveyor-signature"), SIGNING_SECRET)
    except InvalidSignature as exc:
        return JSONResponse({"error": str(exc)}, status_code=401)  # a 4xx: Conveyor will not retry it
    outcome = json.loads(body)
    user_id = welcome_jobs.get(outcome["id"])
    if user_id in users:
        users[user_id]["welcome"] = "sent" if outcome["status"] == "completed" else "failed"
    if outcome["status"] == "failed":
        log.error(
            "welcome job %s failed for good: %s (replay it from the failure table)",
            outcome["id"],
            outcome["error"],
        )
    return JSONResponse({"ok": True})


async def show_user(request: Request) -> JSONResponse:
    """A user and the state of their welcome email."""
    user = users.get(int(request.path_params["user_id"]))
    return JSONResponse(user) if user else JSONResponse({"error": "no such user"}, status_code=404)


app = Starlette(
    routes=[
        Route("/signup", signup, methods=["POST"]),
        Route("/hooks/done", done, methods=["POST"]),
        Route("/users/{user_id:int}", show_user, methods=["GET"]),
    ]
)
