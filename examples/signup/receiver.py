"""The receiver: Conveyor calls it back to do the slow work (here, send the welcome email).

    uvicorn receiver:app --port 8002

It checks the ``X-Conveyor-Signature`` first (a request that did not come from
your queue, was altered, or is a replay gets a 401, which Conveyor does not
retry), then does the work. It answers 2xx only once the work is done: any
other answer, or no answer, makes Conveyor try again later. Delivery is at
least once, so the work is keyed on the job id and done once per job.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conveyor import InvalidSignature, verify_signature

SIGNING_SECRET = os.environ.get("CONVEYOR_SIGNING_SECRET", "")
OUTBOX = Path(os.environ.get("OUTBOX", "outbox.jsonl"))
#: Answer 503 this often, to watch Conveyor retry (e.g. FLAKY=0.3).
FLAKY = float(os.environ.get("FLAKY", "0"))
#: How long "sending" takes: the time the signup request no longer waits for.
SEND_SECONDS = float(os.environ.get("SEND_SECONDS", "0.5"))

sent: set[str] = set()


async def welcome_email(request: Request) -> JSONResponse:
    """Send the welcome email for the user in the (signed) body."""
    body = await request.body()
    try:
        verify_signature(body, request.headers.get("x-conveyor-signature"), SIGNING_SECRET)
    except InvalidSignature as exc:
        return JSONResponse({"error": str(exc)}, status_code=401)
    job_id = request.headers["x-conveyor-job-id"]
    if job_id in sent:
        return JSONResponse({"sent": True, "duplicate": True})  # at-least-once: already done
    if random.random() < FLAKY:
        return JSONResponse({"error": "mail server busy"}, status_code=503, headers={"Retry-After": "1"})
    user = json.loads(body)
    await asyncio.sleep(SEND_SECONDS)  # the slow part: talking to the mail server
    with OUTBOX.open("a") as outbox:
        outbox.write(json.dumps({"to": user["email"], "subject": "Welcome!", "job": job_id}) + "\n")
    sent.add(job_id)
    return JSONResponse({"sent": True, "to": user["email"]})


app = Starlette(routes=[Route("/hooks/welcome-email", welcome_email, methods=["POST"])])
