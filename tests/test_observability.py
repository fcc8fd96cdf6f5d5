"""Live workers, progress, tracing and the backend gauges, end to end with real workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import conveyor
from conveyor.server import create_app
from conveyor.testing.helpers import final_state, running_worker, wait_for
from test_http_api import KEY, serving

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


# -- the live worker registry ---------------------------------------------------------------------
def start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONVEYOR_URL": url,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "conveyor", "worker", "process.obsapp:app", "--queues", "obs,batch",
           "--concurrency", "2", "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=str(HERE))


@pytest.mark.processes
def test_two_workers_listed_a_killed_one_drops_after_three_heartbeats_a_stopped_one_at_once(
    backend_url: str,
) -> None:
    app = conveyor.App(backend_url, lease=2.0)  # what obsapp uses: heartbeat every 2/3 s
    procs = [start_worker(backend_url), start_worker(backend_url)]
    try:
        listed = wait_for(lambda: len(app.workers()) == 2 and app.workers(), timeout=30)
        assert {w["pid"] for w in listed} == {p.pid for p in procs}
        for entry in listed:
            assert entry["queues"] == ["obs", "batch"] and entry["concurrency"] == 2
            assert entry["running"] == [] and entry["version"] and entry["host"]
            assert entry["started_at"] <= entry["last_seen_at"]
        stopped, killed = procs
        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(30) == 0
        assert [w["pid"] for w in app.workers()] == [killed.pid], "a clean stop leaves the list at once"
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        gone_at = time.monotonic()
        wait_for(lambda: app.workers() == [], timeout=15)
        waited = time.monotonic() - gone_at
        # Listed until three heartbeats (3 x 2/3 s after its last beat) went missing.
        assert waited >= 2.0 - 2.0 / 3 - 0.2, waited
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        app.close()


def test_a_running_worker_lists_its_running_jobs_over_the_api_and_the_cli(app: conveyor.App) -> None:
    gate = threading.Event()

    @app.task()
    def hold() -> None:
        gate.wait(30)

    with running_worker(app, concurrency=3) as worker:
        job = hold.enqueue()
        entry = wait_for(lambda: [w for w in app.workers() if job.id in w["running"]], timeout=15)[0]
        assert entry["id"] == worker.id and entry["pid"] == os.getpid() and entry["concurrency"] == 3
        with serving(create_app(app, [KEY])) as base:
            answer = httpx.get(f"{base}/api/workers", headers={"x-api-key": KEY}, timeout=10)
            assert answer.status_code == 200
            assert [w["id"] for w in answer.json()["items"]] == [worker.id]
            assert httpx.get(f"{base}/api/workers", timeout=10).status_code == 401
            assert httpx.get(f"{base}/api/workers?x=1", headers={"x-api-key": KEY}).status_code == 400
            metrics = httpx.get(f"{base}/metrics", timeout=10).text
            assert "conveyor_workers 1.0" in metrics
            assert 'conveyor_queue_paused{queue="default"} 0.0' in metrics
            assert 'conveyor_jobs{queue="default",status="processing"} 1.0' in metrics
            assert "/api/workers" in httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]
        if not app.url.startswith("memory://"):
            cli = subprocess.run(
                [sys.executable, "-m", "conveyor", "workers", "--json", "--url", app.url],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(SRC)},
                timeout=60,
            )
            assert cli.returncode == 0, cli.stderr
            assert [w["id"] for w in json.loads(cli.stdout)] == [worker.id]
        gate.set()
        assert final_state(job) == "completed"
    assert app.workers() == [], "a worker that stops leaves the list"


# -- progress ---------------------------------------------------------------------------------------
def test_the_paused_gauge_reads_the_queue_settings(app: conveyor.App) -> None:
    @app.task(queue="emails")
    def send() -> None: ...

    send.enqueue()
    app.pause_queue("reports")  # paused while it holds no jobs: listed all the same
    with serving(create_app(app, [KEY])) as base:
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'conveyor_queue_paused{queue="emails"} 0.0' in metrics
        assert 'conveyor_queue_paused{queue="reports"} 1.0' in metrics
        app.pause_queue("emails")
        app.resume_queue("reports")
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'conveyor_queue_paused{queue="emails"} 1.0' in metrics
        assert 'conveyor_queue_paused{queue="reports"} 0.0' in metrics


def test_progress_is_visible_while_the_job_runs_and_writes_are_coalesced(app: conveyor.App) -> None:
    gate = threading.Event()
    calls = 20_000

    @app.task()
    def rows() -> str:
        job = conveyor.current_job()
        for i in range(calls):
            job.progress((i + 1) / calls, f"{i + 1} of {calls} rows")
            if i % 2000 == 0:
                time.sleep(0.1)  # about a second of reporting in all
        gate.wait(30)
        return "done"

    with running_worker(app) as worker:
        started = time.monotonic()
        job = rows.enqueue()
        seen = wait_for(lambda: (p := job.refresh().progress) and p["fraction"] == 1.0 and p, timeout=30)
        assert job.state == "processing", "visible while the job runs"
        assert seen["message"] == f"{calls} of {calls} rows" and seen["updated_at"]
        elapsed = time.monotonic() - started
        # 20,000 reports became at most two writes a second (plus one for a partial interval).
        assert 1 <= worker.progress.writes <= 2 * elapsed + 2, (worker.progress.writes, elapsed)
        gate.set()
        assert final_state(job) == "completed"
    assert job.refresh().progress["fraction"] == 1.0  # type: ignore[index]


def test_progress_refuses_a_fraction_outside_zero_to_one(app: conveyor.App) -> None:
    @app.task(max_attempts=1)
    def bad() -> None:
        conveyor.current_job().progress(1.5)

    job = bad.enqueue()
    conveyor.testing.drain(app)
    assert job.refresh().state == "failed"
    assert "progress fraction must be from 0 to 1, got 1.5" in (job.error or "")


# -- tracing -------------------------------------------------------------------------------------------
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The SDK's in-memory exporter behind the global tracer provider (set once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def consumer_spans(exporter: InMemorySpanExporter, task: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == f"process {task}"]


def test_a_job_enqueued_in_a_span_runs_in_consumer_spans_of_that_trace_kept_in_the_failure_table(
    app: conveyor.App, spans: InMemorySpanExporter
) -> None:
    @app.task(queue="reports", max_attempts=2, backoff=conveyor.backoff.fixed(0))
    def build(report: str) -> None:
        with trace.get_tracer("tests").start_as_current_span("inside the task"):
            raise ValueError(f"bad report {report}")

    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("request") as producer:
        job = build.enqueue("argument-value-42")
    context = producer.get_span_context()
    trace_id = f"{context.trace_id:032x}"
    assert job.refresh().trace_id == trace_id
    with running_worker(app):
        assert final_state(job, timeout=30) == "failed"
    attempts = sorted(consumer_spans(spans, "build"), key=lambda s: s.attributes["conveyor.job.attempt"])  # type: ignore[index]
    assert len(attempts) == 2
    for number, span in enumerate(attempts, start=1):
        assert span.kind == trace.SpanKind.CONSUMER
        assert span.context.trace_id == context.trace_id
        assert span.parent is not None and span.parent.span_id == context.span_id
        attributes = dict(span.attributes or {})
        assert attributes["messaging.system"] == "conveyor"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.destination.name"] == "reports"
        assert attributes["messaging.message.id"] == job.id
        assert attributes["conveyor.job.attempt"] == number
        assert attributes["conveyor.job.outcome"] == ("retry" if number == 1 else "failed")
        assert span.status.status_code == trace.StatusCode.ERROR
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes["exception.type"] == "ValueError"  # type: ignore[index]
        assert "argument-value" not in str(attributes), "arguments never become attributes"
    inner = [s for s in spans.get_finished_spans() if s.name == "inside the task"]
    assert {s.parent.span_id for s in inner if s.parent} == {s.context.span_id for s in attempts}
    # Weeks later, from the failure table: the job and each attempt name the trace.
    (listed,) = app.jobs(status="failed").items
    assert listed.trace_id == trace_id
    failed = app.get(listed.id)
    assert [a.trace_id for a in failed.attempts] == [trace_id, trace_id]
    assert all(a["trace_id"] == trace_id for a in failed.to_dict()["attempts"])


def test_a_job_enqueued_outside_a_span_gets_a_root_consumer_span_and_no_stored_trace(
    app: conveyor.App, spans: InMemorySpanExporter
) -> None:
    @app.task()
    def ping() -> str:
        return "pong"

    job = ping.enqueue()
    assert job.refresh().trace_id is None
    with running_worker(app):
        assert final_state(job) == "completed"
    (span,) = consumer_spans(spans, "ping")
    assert span.parent is None
    assert dict(span.attributes or {})["conveyor.job.outcome"] == "completed"
    assert job.refresh().attempts[-1].trace_id == f"{span.context.trace_id:032x}"


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real HTTP server on loopback that keeps the headers of every POST."""
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    finally:
        server.shutdown()


def test_http_jobs_carry_traceparent_of_their_attempt_to_a_real_receiver(
    app: conveyor.App, spans: InMemorySpanExporter, receiver: tuple[str, list[dict[str, str]]]
) -> None:
    url, received = receiver
    with trace.get_tracer("tests").start_as_current_span("signup") as producer:
        job = app.enqueue("conveyor.http", kwargs={"url": url, "json": {"user": 1}})
    with running_worker(app, queues=["default"]):
        assert final_state(job, timeout=30) == "completed"
    (headers,) = received
    version, trace_hex, parent_hex, _flags = headers["traceparent"].split("-")
    (span,) = consumer_spans(spans, "conveyor.http")
    assert version == "00" and trace_hex == f"{producer.get_span_context().trace_id:032x}"
    assert parent_hex == f"{span.context.span_id:016x}", "the receiver's parent is the attempt's span"


def test_the_http_api_stores_the_traceparent_header_of_the_enqueueing_request(app: conveyor.App) -> None:
    @app.task()
    def add(a: int, b: int) -> int:
        return a + b

    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with serving(create_app(app, [KEY])) as base:
        answer = httpx.post(
            f"{base}/api/jobs",
            json={"task": "add", "args": [1, 2]},
            headers={"x-api-key": KEY, "traceparent": incoming},
            timeout=10,
        )
        plain = httpx.post(
            f"{base}/api/jobs",
            json={"task": "add", "args": [1, 2]},
            headers={"x-api-key": KEY, "traceparent": "not-a-traceparent"},
            timeout=10,
        )
    assert app.get(answer.json()["id"]).trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert app.get(plain.json()["id"]).trace_id is None, "a malformed header is ignored"


HIDE_OTEL = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
"""

WITHOUT_OTEL = """
import sys
import conveyor
from conveyor.testing import drain
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported by import conveyor"
app = conveyor.App("memory://no-otel")
@app.task()
def work(n):
    conveyor.current_job().progress(0.5, "half")
    return n
job = work.enqueue(1)
result = drain(app)
assert result.completed == 1, result
assert job.refresh().trace_id is None and job.attempts[-1].trace_id is None
leaked = [m for m in sys.modules if m.startswith("opentelemetry")]
assert not leaked, leaked
print("ok")
"""


IMPORT_ONLY = """
import sys, conveyor
assert not [m for m in sys.modules if m.startswith("opentelemetry")]
print("ok")
"""


@pytest.mark.parametrize("hidden", [True, False], ids=["otel-absent", "otel-installed"])
def test_nothing_of_opentelemetry_is_imported_by_import_conveyor_or_without_it(hidden: bool) -> None:
    # Installed: import conveyor alone stays clean. Absent: a whole enqueue and run works without it.
    code = HIDE_OTEL + WITHOUT_OTEL if hidden else IMPORT_ONLY
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


UNCONFIGURED_CHILD = """
import conveyor
from conveyor.testing import drain
from conveyor.tracing import incoming, recording

app = conveyor.App("memory://unconfigured-child")
children = []

@app.task()
def parent():
    children.append(child.enqueue().id)

@app.task()
def child():
    pass

assert not recording(), "no tracer provider is configured here"
with incoming("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
    job = parent.enqueue()
assert drain(app).completed == 2
(child_id,) = children
print(job.refresh().attempts[-1].trace_id, app.get(child_id).trace_id)
"""


def test_without_a_tracer_provider_a_job_enqueued_by_a_task_inherits_the_stored_trace() -> None:
    # OpenTelemetry's API is installed but no provider is configured: no span starts per attempt,
    # yet a job the task enqueues stores its parent's trace, as under a no-op span.
    done = subprocess.run(
        [sys.executable, "-c", UNCONFIGURED_CHILD],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0af7651916cd43dd8448eb211c80319c"] * 2


# -- one log line per attempt outcome ------------------------------------------------------------------
def test_one_log_line_per_attempt_outcome_without_arguments_or_results(
    app: conveyor.App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(max_attempts=2, backoff=conveyor.backoff.fixed(0))
    def charge(card: str) -> str:
        if conveyor.current_job().attempt == 1:
            raise ConnectionError("gateway timeout")
        return f"receipt-for-{card}"

    caplog.set_level("INFO", logger="conveyor.worker")
    job = charge.enqueue("4111-SECRET-CARD")
    with running_worker(app):
        assert final_state(job) == "completed"
    lines = [r for r in caplog.records if hasattr(r, "attempt_outcome") and r.attempt_outcome["id"] == job.id]
    assert [r.attempt_outcome["outcome"] for r in lines] == ["retry", "completed"]
    assert [r.levelname for r in lines] == ["WARNING", "INFO"]
    for record in lines:
        fields = record.attempt_outcome
        assert fields["task"] == "charge" and fields["queue"] == "default"
        assert fields["duration"] is not None and fields["duration"] >= 0
        assert "SECRET" not in record.getMessage() and "receipt" not in record.getMessage()
    assert [r.attempt_outcome["attempt"] for r in lines] == [1, 2]


def test_the_json_log_format_carries_the_attempt_fields() -> None:
    import logging

    from conveyor.cli_logging import JsonLogFormatter

    record = logging.LogRecord("conveyor.worker", logging.INFO, __file__, 1, "send 01a [mail] ok", None, None)
    record.attempt_outcome = {
        "task": "send",
        "id": "01a",
        "queue": "mail",
        "attempt": 1,
        "outcome": "completed",
    }
    line = json.loads(JsonLogFormatter().format(record))
    assert line["job"]["outcome"] == "completed" and line["message"] == "send 01a [mail] ok"
