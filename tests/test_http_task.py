"""The built-in ``conveyor.http`` task and ``on_complete`` callbacks, against a real HTTP receiver.

The receiver is a small Starlette app on a loopback port whose answers each test
scripts (503 then 200, 429 with Retry-After, 404, a slow answer...); it records
every request so the tests can check bodies and signatures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import conveyor
from conveyor.backoff import fixed
from conveyor.server import create_app
from conveyor.webhooks import (
    HTTP_TASK,
    SIGNATURE_HEADER,
    InvalidSignature,
    check_http_kwargs,
    parse_retry_after,
    sign,
    verify_signature,
)
from helpers import running_worker, wait_for
from test_http_api import free_port, serving

SECRET = "whsec-test-9c1e5a7b3d"


@dataclass
class Answer:
    """One scripted answer: status, headers, body, and a delay before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    delay: float = 0.0


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A scripted HTTP endpoint: ``script[path]`` is the list of answers, the last one repeats."""

    def __init__(self) -> None:
        self.script: dict[str, list[Answer]] = {}
        self.requests: list[Received] = []
        self.url = ""

    def on(self, path: str, *answers: Answer) -> str:
        """Script ``path``; returns its full URL."""
        self.script[path] = list(answers)
        return f"{self.url}{path}"

    def received(self, path: str) -> list[Received]:
        """The requests to ``path`` so far."""
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        self.requests.append(Received(path, request.method, dict(request.headers), body, time.time()))
        answers = self.script.get(path) or [Answer(404, body="no such hook")]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return Response(answer.body, answer.status, answer.headers)

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[Route("/{path:path}", self.handle, methods=["GET", "POST", "PUT", "DELETE"])]
        )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver on a free loopback port."""
    target = Receiver()
    with serving(target.asgi()) as url:
        target.url = url
        yield target


@pytest.fixture
def http_app(app: conveyor.App, monkeypatch: pytest.MonkeyPatch) -> conveyor.App:
    """The app (every App has conveyor.http) with a signing secret configured."""
    monkeypatch.setenv("CONVEYOR_SIGNING_SECRET", SECRET)
    assert app.get_task(HTTP_TASK).fn is not None
    return app


def final(job: conveyor.Job, timeout: float = 20.0) -> conveyor.Job:
    """Wait for a final state; return the job, loaded."""
    wait_for(lambda: job.refresh().state in ("completed", "failed", "cancelled"), timeout)
    return job


def post(app: conveyor.App, url: str, **kwargs: Any) -> conveyor.Job:
    options = {k: kwargs.pop(k) for k in ("max_attempts",) if k in kwargs}
    return app.enqueue(HTTP_TASK, kwargs={"url": url, **kwargs}, **options)


# -- delivery and classification --------------------------------------------------------------------------
def test_success_is_signed_and_audited(http_app: conveyor.App, receiver: Receiver) -> None:
    url = receiver.on("/ok", Answer(200, body='{"welcomed": true}'))
    job = post(http_app, url, json={"user": 42}, headers={"X-Tenant": "acme"})
    with running_worker(http_app):
        record = final(job)
    assert record.state == "completed", record.error
    assert record.result(timeout=0) == {"status_code": 200, "body": '{"welcomed": true}'}
    (request,) = receiver.received("/ok")
    assert request.method == "POST" and json.loads(request.body) == {"user": 42}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tenant"] == "acme"
    assert request.headers["x-conveyor-job-id"] == job.id and request.headers["x-conveyor-attempt"] == "1"
    assert verify_signature(request.body, request.headers[SIGNATURE_HEADER.lower()], SECRET)
    (attempt,) = record.attempts
    assert attempt.status_code == 200 and attempt.response_excerpt == '{"welcomed": true}'


def test_other_methods_and_raw_bodies(http_app: conveyor.App, receiver: Receiver) -> None:
    url = receiver.on("/put", Answer(204, body=""))
    job = post(http_app, url, method="put", body="plain text", headers={"Content-Type": "text/plain"})
    get = post(http_app, receiver.on("/get", Answer(200, body="pong")), method="GET")
    with running_worker(http_app):
        assert final(job).state == "completed" and final(get).state == "completed"
    (request,) = receiver.received("/put")
    assert request.method == "PUT" and request.body == b"plain text"
    assert request.headers["content-type"] == "text/plain"
    assert verify_signature(request.body, request.headers[SIGNATURE_HEADER.lower()], SECRET)
    (ping,) = receiver.received("/get")
    assert ping.method == "GET" and ping.body == b""
    assert verify_signature(b"", ping.headers[SIGNATURE_HEADER.lower()], SECRET)


def test_503_then_success_is_retried_with_backoff(http_app: conveyor.App, receiver: Receiver) -> None:
    url = receiver.on(
        "/flaky", Answer(503, body="overloaded"), Answer(503, body="still"), Answer(200, body="done")
    )
    job = post(http_app, url, json={"n": 1})
    with running_worker(http_app):
        record = final(job)
    assert record.state == "completed" and record.attempt == 3
    assert [
        (a.outcome, a.status_code, a.response_excerpt)
        for a in sorted(record.attempts, key=lambda a: a.attempt)
    ] == [
        ("retry", 503, "overloaded"),
        ("retry", 503, "still"),
        ("completed", 200, "done"),
    ]
    assert "HTTP 503" in (sorted(record.attempts, key=lambda a: a.attempt)[0].error or "")
    assert len(receiver.received("/flaky")) == 3


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_retry_and_spend_the_budget(
    http_app: conveyor.App, receiver: Receiver, status: int
) -> None:
    url = receiver.on(f"/t{status}", Answer(status, body="busy"))
    job = post(http_app, url, max_attempts=2)
    with running_worker(http_app):
        record = final(job)
    assert record.state == "failed" and record.attempt == 2
    assert f"HTTP {status}" in (record.error or "")
    assert {a.status_code for a in record.attempts} == {status}


def test_429_retry_after_seconds_is_honoured(http_app: conveyor.App, receiver: Receiver) -> None:
    url = receiver.on("/limited", Answer(429, {"Retry-After": "2"}, "slow down"), Answer(200))
    job = post(http_app, url)
    with running_worker(http_app):
        record = final(job)
    assert record.state == "completed" and record.attempt == 2
    first, second = receiver.received("/limited")
    waited = second.at - first.at
    assert 1.9 <= waited < 4, f"Retry-After: 2 asked for 2s; the retry came after {waited:.2f}s"
    retry = min(record.attempts, key=lambda a: a.attempt)
    assert retry.outcome == "retry" and retry.status_code == 429 and "Retry-After" in (retry.error or "")


def test_503_retry_after_http_date_is_honoured(http_app: conveyor.App, receiver: Receiver) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    url = receiver.on("/maintenance", Answer(503, {"Retry-After": when}), Answer(200))
    job = post(http_app, url)
    with running_worker(http_app):
        record = final(job)
    first, second = receiver.received("/maintenance")
    assert record.state == "completed"
    # An HTTP-date has one-second resolution: somewhere between 2 and 3 seconds from the first try.
    assert 1.9 <= second.at - first.at < 5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_go_straight_to_the_failure_table(
    http_app: conveyor.App, receiver: Receiver, status: int
) -> None:
    url = receiver.on(f"/p{status}", Answer(status, body="no such user" * 500))
    job = post(http_app, url, max_attempts=5)
    with running_worker(http_app):
        record = final(job)
    assert record.state == "failed" and record.attempt == 1, "permanent: no retries spent"
    assert f"HTTP {status}" in (record.error or "") and "not retried" in (record.error or "")
    (attempt,) = record.attempts
    assert attempt.status_code == status
    assert attempt.response_excerpt is not None and 0 < len(attempt.response_excerpt) <= 2000
    assert http_app.jobs(status="failed").total == 1


def test_redirects_are_not_followed(http_app: conveyor.App, receiver: Receiver) -> None:
    url = receiver.on("/moved", Answer(301, {"Location": "https://elsewhere.example/"}))
    with running_worker(http_app):
        record = final(post(http_app, url, max_attempts=3))
    assert record.state == "failed" and record.attempt == 1
    assert "redirects are not followed" in (record.error or "") and "elsewhere.example" in (
        record.error or ""
    )


def test_timeout_is_transient(http_app: conveyor.App, receiver: Receiver) -> None:
    url = receiver.on("/slow", Answer(200, delay=3), Answer(200))
    job = post(http_app, url, timeout=0.5)
    with running_worker(http_app):
        record = final(job)
    assert record.state == "completed" and record.attempt == 2
    timed_out = min(record.attempts, key=lambda a: a.attempt)
    assert timed_out.outcome == "retry" and "timed out after 0.5s" in (timed_out.error or "")
    assert timed_out.status_code is None


def test_connection_refused_is_transient(http_app: conveyor.App) -> None:
    job = post(http_app, f"http://127.0.0.1:{free_port()}/nobody", max_attempts=2)
    with running_worker(http_app):
        record = final(job)
    assert record.state == "failed" and record.attempt == 2, "retried once, then the budget was spent"
    assert "ConnectError" in (record.error or "")


def test_bad_kwargs_from_python_fail_permanently(http_app: conveyor.App) -> None:
    jobs = [
        http_app.enqueue(HTTP_TASK, kwargs={"url": "ftp://example.com"}),
        http_app.enqueue(HTTP_TASK, kwargs={"url": "http://example.com", "verb": "POST"}),
        http_app.enqueue(HTTP_TASK, args=["http://example.com"]),
    ]
    with running_worker(http_app):
        records = [final(job) for job in jobs]
    assert all(r.state == "failed" and r.attempt == 1 for r in records)
    assert "kwargs.url" in (records[0].error or "")
    assert "'verb'" in (records[1].error or "")
    assert "keyword arguments only" in (records[2].error or "")


def test_unsigned_without_a_secret(
    app: conveyor.App, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_SIGNING_SECRET", raising=False)
    url = receiver.on("/plain", Answer(200))
    with running_worker(app):
        assert final(post(app, url, json={})).state == "completed"
    (request,) = receiver.received("/plain")
    assert SIGNATURE_HEADER.lower() not in request.headers


# -- on_complete -------------------------------------------------------------------------------------------
def test_on_complete_posts_the_outcome_of_completed_and_failed_jobs(
    http_app: conveyor.App, receiver: Receiver
) -> None:
    @http_app.task(queue="mail")
    def welcome(user: int) -> dict[str, Any]:
        return {"sent_to": user}

    @http_app.task(queue="mail", max_attempts=2, backoff=fixed(0.05))
    def doomed() -> None:
        raise ValueError("mailbox full")

    hook = receiver.on("/done", Answer(503), Answer(200))
    ok = welcome.options(on_complete=hook, key="welcome:7").enqueue(7)
    bad = doomed.options(on_complete=hook).enqueue()
    with running_worker(http_app):
        assert final(ok).state == "completed" and final(bad).state == "failed"
        wait_for(lambda: len({json.loads(r.body)["id"] for r in receiver.received("/done")}) == 2, 20)
        wait_for(lambda: http_app.jobs(task=HTTP_TASK, status="completed").total == 2, 20)
    payloads = {}
    for request in receiver.received("/done"):
        verify_signature(request.body, request.headers[SIGNATURE_HEADER.lower()], SECRET)
        payloads[json.loads(request.body)["id"]] = json.loads(request.body)
    done = payloads[ok.id]
    assert done["event"] == "job.completed" and done["status"] == "completed"
    assert done["task"] == "welcome" and done["queue"] == "mail" and done["key"] == "welcome:7"
    assert done["result"] == {"sent_to": 7} and done["error"] is None and done["attempts"] == 1
    assert datetime.fromisoformat(done["finished_at"]).tzinfo is not None
    failed = payloads[bad.id]
    assert failed["event"] == "job.failed" and failed["status"] == "failed"
    assert "mailbox full" in failed["error"] and failed["attempts"] == 2 and failed["result"] is None
    # Each callback is a job of its own: visible, retried (the first answer was a 503), replayable.
    callbacks = http_app.jobs(task=HTTP_TASK, limit=10).items
    assert len(callbacks) == 2 and {c.queue for c in callbacks} == {"mail"}
    assert {c.kwargs["url"] for c in callbacks} == {hook}
    assert sum(c.attempt for c in callbacks) == 3


def test_no_callback_for_retries_or_jobs_without_on_complete(
    http_app: conveyor.App, receiver: Receiver
) -> None:
    calls = {"n": 0}

    @http_app.task(backoff=fixed(0.05))
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 2:
            raise ConnectionError("blip")
        return "ok"

    @http_app.task()
    def quiet() -> None: ...

    hook = receiver.on("/once", Answer(200))
    job = flaky.options(on_complete=hook).enqueue()
    other = quiet.enqueue()
    with running_worker(http_app):
        assert final(job).state == "completed" and final(other).state == "completed"
        wait_for(lambda: http_app.jobs(task=HTTP_TASK, status="completed").total == 1, 20)
        time.sleep(0.3)
    assert len(receiver.received("/once")) == 1, "one callback, for the final outcome only"


# -- signatures --------------------------------------------------------------------------------------------
def test_signature_round_trip_and_tampering() -> None:
    body = b'{"id": "abc", "status": "completed"}'
    header = sign(body, SECRET)
    assert header.startswith("t=") and ",v1=" in header
    assert verify_signature(body, header, SECRET) is True
    assert verify_signature(body.decode(), header, SECRET), "str bodies are their UTF-8 bytes"
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(body.replace(b"completed", b"failed"), header, SECRET)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(body, header, "another-secret")
    t, v1 = header.split(",")
    forged = f"t={int(t[2:]) + 1},{v1}"  # a fresh timestamp on an old signature
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(body, forged, SECRET)


def test_stale_or_future_timestamps_are_refused() -> None:
    body = b"{}"
    now = time.time()
    old = sign(body, SECRET, timestamp=int(now) - 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_signature(body, old, SECRET)
    assert verify_signature(body, old, SECRET, tolerance=600)
    future = sign(body, SECRET, timestamp=int(now) + 3600)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_signature(body, future, SECRET)
    assert verify_signature(body, sign(body, SECRET, timestamp=1000), SECRET, now=1100)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=123", "t=abc,v1=00", "garbage", "t=1,v2=00"])
def test_malformed_signature_headers_are_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(b"{}", header, SECRET)


def test_secret_rotation_accepts_any_listed_secret() -> None:
    body = b"payload"
    header = sign(body, "old-secret")
    assert verify_signature(body, header, ["new-secret", "old-secret"])
    with pytest.raises(InvalidSignature):
        verify_signature(body, header, ["new-secret"])
    with pytest.raises(ValueError, match="no signing secret"):
        verify_signature(body, header, "")


# -- helpers -----------------------------------------------------------------------------------------------
def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("99999999", now) == 86400.0, "capped at a day"
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30.0)
    past = format_datetime(datetime.fromtimestamp(now - 30, UTC), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    for garbage in (None, "", "-5", "1.5", "soon", "Mon, 99 Foo 2024"):
        assert parse_retry_after(garbage, now) is None, garbage


def test_check_http_kwargs_names_the_problem() -> None:
    spec = check_http_kwargs({"url": "https://example.com/x", "json": None, "method": "patch"})
    assert spec.method == "PATCH" and spec.content == b"null" and spec.timeout == 10.0
    for kwargs, mention in [
        ({}, "kwargs.url"),
        ({"url": "example.com"}, "absolute"),
        ({"url": "http://x", "json": {}, "body": "b"}, "not both"),
        ({"url": "http://x", "body": 5}, "body must be a string"),
        ({"url": "http://x", "json": {1, 2}}, "not JSON-serialisable"),
        ({"url": "http://x", "headers": ["a"]}, "headers must be an object"),
        ({"url": "http://x", "headers": {"bad name": "v"}}, "invalid header name"),
        ({"url": "http://x", "headers": {SIGNATURE_HEADER: "t=1,v1=0"}}, "Conveyor sets it"),
        ({"url": "http://x", "headers": {"Host": "evil"}}, "Conveyor sets it"),
        ({"url": "http://x", "timeout": 0}, "timeout"),
        ({"url": "http://x", "timeout": 1e9}, "timeout"),
        ({"url": "http://x", "timeout": True}, "timeout"),
    ]:
        with pytest.raises(ValueError) as info:
            check_http_kwargs(kwargs)
        assert mention in str(info.value), (kwargs, str(info.value))


# -- the example -------------------------------------------------------------------------------------------
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "signup"


def load_example(name: str) -> ModuleType:
    """Import ``examples/signup/<name>.py`` under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"conveyor_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_signup_example_end_to_end(
    app: conveyor.App, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    api, web, mail = (f"http://127.0.0.1:{free_port()}" for _ in range(3))
    outbox = tmp_path / "outbox.jsonl"
    for name, value in {
        "CONVEYOR_API": api,
        "CONVEYOR_API_KEY": "example-key-0123456789",
        "RECEIVER_URL": mail,
        "WEBAPP_URL": web,
        "CONVEYOR_SIGNING_SECRET": SECRET,
        "OUTBOX": str(outbox),
        "SEND_SECONDS": "3.0",
        "FLAKY": "0",
    }.items():
        monkeypatch.setenv(name, value)
    webapp, receiver = load_example("webapp"), load_example("receiver")
    port = lambda url: int(url.rsplit(":", 1)[1])  # noqa: E731
    with (
        serving(create_app(app, ["example-key-0123456789"]), port(api)),
        serving(webapp.app, port(web)),
        serving(receiver.app, port(mail)),
        running_worker(app, queues=["emails"]),
    ):
        started = time.perf_counter()
        response = httpx.post(f"{web}/signup", json={"email": "ada@example.com"})
        took = time.perf_counter() - started
        assert response.status_code == 201, response.text
        # Waiting for the email would take 3 s; answering without it takes milliseconds, and the
        # margin holds on a busy machine.
        assert took < 2.0, f"signup waited {took:.2f}s: it must not wait for the 3s email"
        assert response.json()["user"]["welcome"] == "queued"
        wait_for(lambda: httpx.get(f"{web}/users/1").json()["welcome"] == "sent", 20)
        forged = httpx.post(f"{mail}/hooks/welcome-email", json={"email": "eve@example.com"})
        assert forged.status_code == 401, "an unsigned call does no work"
    (line,) = outbox.read_text().splitlines()
    assert json.loads(line)["to"] == "ada@example.com"
