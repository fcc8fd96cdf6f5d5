"""A Flask app that enqueues from a view and shows each job on a page of its own.

``POST /reports`` enqueues ``build_report`` and redirects to the job's page;
``GET /reports/<id>`` renders its state, its result once done, or its error.
``?wait=S`` waits up to S seconds for the job to finish first (``Job.result``).
Run the worker with ``conveyor worker app:queue``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from flask import Flask, abort, redirect, render_template_string, request, url_for
from werkzeug.wrappers import Response

import conveyor

queue = conveyor.App()  # CONVEYOR_URL, else ./conveyor.db


@queue.task(max_attempts=3, timeout=60)
def build_report(month: str) -> dict[str, Any]:
    """The slow part (here: pretend to add up a month of orders)."""
    time.sleep(0.5)
    return {"month": month, "orders": 1234, "revenue": "98,765.00"}


web = Flask(__name__)

PAGE = """<!doctype html>
<title>Report job {{ job.id }}</title>
<h1>Report for {{ job.args[0] }}</h1>
<p>Job <code>{{ job.id }}</code>: <strong class="status">{{ job.state }}</strong>
   (attempt {{ job.attempt }} of {{ job.max_attempts }})</p>
{% if result is not none %}<pre class="result">{{ result | tojson(indent=2) }}</pre>{% endif %}
{% if job.error %}<pre class="error">{{ job.error }}</pre>{% endif %}
"""


@web.post("/reports")
def create_report() -> Response:
    """Enqueue and answer at once (303 to the job's page)."""
    job = build_report.enqueue(request.form.get("month", "2026-11"))
    return redirect(url_for("report_page", job_id=job.id), code=303)


@web.get("/reports/<job_id>")
def report_page(job_id: str) -> str:
    """The job's page: state, attempts, result or error."""
    try:
        job = queue.get(job_id)
    except conveyor.JobNotFound:
        abort(404)
    result = None
    # Not finished in time, or failed: the page shows the state (and the error).
    with contextlib.suppress(TimeoutError, conveyor.JobFailed):
        result = job.result(timeout=min(request.args.get("wait", 0.0, type=float), 30.0))
    return render_template_string(PAGE, job=job, result=result)
