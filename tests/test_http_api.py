"""The HTTP API against a real uvicorn server on a loopback port, on every backend.

Every route, its status codes and error shape; authentication (missing, wrong and
near-miss keys, constant-time comparison, keys never logged); bad input of every
kind, each answered with a 4xx naming the problem while nothing stored changes.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

import conveyor
from conveyor.backends.base import ClaimRequest
from conveyor.errors import ConfigurationError
from conveyor.server import create_app, run_server
from conveyor.server.auth import KeyChecker, load_api_keys
from conveyor.server.metrics import Metrics
from conveyor.server.routes import openapi_document
from conveyor.server.state import ServerState

KEY = "test-key-5f2b9c0e4d7a41e8"
OTHER_KEY = "second-key-0a1b2c3d4e5f6789"
STATES = {"pending", "processing", "retry", "completed", "failed", "cancelled"}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(asgi: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Serve ``asgi`` with uvicorn on a loopback port from a thread; yields the base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def tasks(app: conveyor.App) -> conveyor.App:
    """The app with a few tasks the tests enqueue over HTTP."""

    @app.task()
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(max_attempts=1, queue="mail")
    def send(to: str, ok: bool = False) -> str:
        if not ok:
            raise ConnectionError(f"smtp down for {to}")
        return f"sent to {to}"

    @app.task()
    def slow(seconds: float) -> None:
        time.sleep(seconds)

    return app


@pytest.fixture
def base_url(tasks: conveyor.App) -> Iterator[str]:
    """A real server for the app, with two API keys configured."""
    with serving(create_app(tasks, [KEY, OTHER_KEY])) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    """An HTTP client carrying a valid key."""
    with httpx.Client(base_url=base_url, headers={"x-api-key": KEY}, timeout=30) as c:
        yield c


@pytest.fixture
def anonymous(base_url: str) -> Iterator[httpx.Client]:
    """An HTTP client without a key."""
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def enqueue(client: httpx.Client, **fields: Any) -> str:
    """POST /api/jobs and return the new id."""
    response = client.post("/api/jobs", json=fields)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def assert_error(response: httpx.Response, status: int, code: str, *mentions: str) -> dict[str, Any]:
    """The response is the stable error shape with this status and code, naming ``mentions``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    for text in mentions:
        assert text in body["error"]["message"], (text, body)
    error: dict[str, Any] = body["error"]
    return error


def snapshot(app: conveyor.App) -> tuple[Any, ...]:
    """Everything a bad request must not change."""
    page = app.jobs(limit=500)
    return (
        app.stats()["counts"],
        [(r.id, r.state, r.args, r.kwargs, r.attempt, r.queue, r.priority) for r in page.items],
        len(app.audits(limit=500)),
    )


def process(client: httpx.Client, batch: int = 50) -> dict[str, int]:
    response = client.post("/api/queue/process", params={"batchSize": batch})
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


# -- every route -----------------------------------------------------------------------------------------
def test_enqueue_then_get_the_job(client: httpx.Client) -> None:
    response = client.post("/api/jobs", json={"task": "add", "args": [2, 3], "priority": 5})
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"id", "status"} and created["status"] == "pending"
    job = client.get(f"/api/jobs/{created['id']}").json()
    for field in (
        "id", "task", "queue", "status", "args", "kwargs", "attempt", "max_attempts",
        "priority", "run_at", "created_at", "finished_at", "result", "error", "key", "attempts",
    ):  # fmt: skip
        assert field in job, field
    assert job["task"] == "add" and job["args"] == [2, 3] and job["priority"] == 5
    assert job["status"] == "pending" and job["attempts"] == [] and job["queue"] == "default"


def test_enqueue_with_every_field(client: httpx.Client, tasks: conveyor.App) -> None:
    run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    job_id = enqueue(
        client,
        task="send",
        args=["a@example.com"],
        kwargs={"ok": True},
        queue="urgent",
        run_at=run_at,
        priority=-3,
        key="welcome:1",
        key_mode="keep",
        max_attempts=7,
        on_complete="https://example.com/done",
    )
    record = tasks.get(job_id)
    assert record.queue == "urgent" and record.priority == -3 and record.max_attempts == 7
    assert record.key == "welcome:1" and record.on_complete == "https://example.com/done"
    assert abs(record.run_at.timestamp() - datetime.fromisoformat(run_at).timestamp()) < 0.01
    delayed = tasks.get(enqueue(client, task="add", args=[1, 1], delay=60))
    assert delayed.run_at.timestamp() > time.time() + 50


def test_idempotent_repeat_answers_200_with_the_existing_job(client: httpx.Client) -> None:
    first = client.post("/api/jobs", json={"task": "add", "args": [1, 2], "key": "k-1"})
    again = client.post("/api/jobs", json={"task": "add", "args": [1, 2], "key": "k-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert client.get("/api/queue").json()["total"] == 1


def test_batch_enqueue(client: httpx.Client) -> None:
    response = client.post("/api/jobs", json=[{"task": "add", "args": [i, i]} for i in range(5)])
    assert response.status_code == 201
    items = response.json()["items"]
    assert len(items) == 5 and all(i["created"] and i["status"] == "pending" for i in items)
    assert len({i["id"] for i in items}) == 5


def test_concurrent_enqueues_share_writes_and_each_gets_its_own_job(
    client: httpx.Client, base_url: str
) -> None:
    def worker(n: int, out: list[str]) -> None:
        with httpx.Client(base_url=base_url, headers={"x-api-key": KEY}) as c:
            for i in range(20):
                r = c.post("/api/jobs", json={"task": "add", "args": [n, i], "key": f"c{n % 4}-{i}"})
                assert r.status_code in (200, 201), r.text
                out.append(r.json()["id"])

    results: list[list[str]] = [[] for _ in range(8)]
    threads = [threading.Thread(target=worker, args=(n, results[n])) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Eight clients, four distinct keys per index: exactly 80 jobs, and same key -> same id.
    assert client.get("/api/queue", params={"limit": 0}).json()["total"] == 80
    for n in range(8):
        assert results[n] == results[n % 4]


def test_list_filters_and_paginates_stably(client: httpx.Client) -> None:
    ids = [enqueue(client, task="add", args=[i, 0]) for i in range(7)]
    mail = enqueue(client, task="send", args=["x"])
    page = client.get("/api/queue", params={"limit": 3}).json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert page["total"] == 8 and page["limit"] == 3 and page["offset"] == 0
    seen = []
    for offset in range(0, 8, 3):
        seen += [
            j["id"] for j in client.get("/api/queue", params={"limit": 3, "offset": offset}).json()["items"]
        ]
    assert seen == [mail, *reversed(ids)], "newest first, no overlap, nothing skipped"
    assert [j["id"] for j in client.get("/api/queue", params={"queue": "mail"}).json()["items"]] == [mail]
    assert client.get("/api/queue", params={"task": "add"}).json()["total"] == 7
    assert client.get("/api/queue", params={"status": "failed"}).json()["total"] == 0
    assert client.get("/api/queue", params={"status": ""}).json()["total"] == 8, "empty means no filter"
    assert "attempts" not in page["items"][0]


def test_list_by_creation_time(client: httpx.Client) -> None:
    early = enqueue(client, task="add", args=[1, 1])
    time.sleep(0.05)
    middle = datetime.now(UTC)
    time.sleep(0.05)
    late = enqueue(client, task="add", args=[2, 2])
    after = client.get("/api/queue", params={"created_after": middle.isoformat()}).json()
    before = client.get(
        "/api/queue", params={"created_before": middle.isoformat().replace("+00:00", "Z")}
    ).json()
    assert [j["id"] for j in after["items"]] == [late]
    assert [j["id"] for j in before["items"]] == [early]
    naive = middle.replace(tzinfo=None).isoformat()
    assert [j["id"] for j in client.get("/api/queue", params={"created_after": naive}).json()["items"]] == [
        late
    ]


def test_stats(client: httpx.Client) -> None:
    enqueue(client, task="add", args=[1, 1])
    enqueue(client, task="send", args=["a"])
    stats = client.get("/api/queue/stats").json()
    assert set(stats) == {"counts", "queues", "oldest_pending_age_s"}
    assert set(stats["counts"]) == STATES and stats["counts"]["pending"] == 2
    assert set(stats["queues"]) == {"default", "mail"}
    assert all(set(counts) == STATES for counts in stats["queues"].values())


def test_process_retry_audits_cancel_delete_purge(client: httpx.Client) -> None:
    good = enqueue(client, task="add", args=[2, 2])
    bad = enqueue(client, task="send", args=["a@example.com"])
    counts = process(client)
    assert {k: counts[k] for k in ("processed", "completed", "failed", "retried")} == {
        "processed": 2,
        "completed": 1,
        "failed": 1,
        "retried": 0,
    }
    job = client.get(f"/api/jobs/{good}").json()
    assert job["status"] == "completed" and job["result"] == 4
    failed = client.get(f"/api/jobs/{bad}").json()
    assert failed["status"] == "failed" and "smtp down" in failed["error"]
    assert [a["outcome"] for a in failed["attempts"]] == ["failed"]

    # The audit trail: every attempt, filterable by job.
    audits = client.get("/api/audits").json()
    assert set(audits) == {"items", "limit", "offset"} and len(audits["items"]) == 2
    only = client.get("/api/audits", params={"job_id": bad}).json()["items"]
    assert [a["job_id"] for a in only] == [bad] and only[0]["attempt"] == 1
    assert set(only[0]) >= {"worker", "started_at", "finished_at", "outcome", "error", "status_code"}

    # Retry: the failed job goes back to pending (here with edited kwargs) and succeeds.
    assert_error(client.post(f"/api/queue/{good}/retry"), 409, "invalid_state", "completed")
    retried = client.post(f"/api/queue/{bad}/retry", json={"kwargs": {"ok": True}})
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    process(client)
    assert client.get(f"/api/jobs/{bad}").json()["result"] == "sent to a@example.com"

    # Cancel a waiting job; a finished one is a 409.
    waiting = enqueue(client, task="add", args=[0, 0], delay=3600)
    cancelled = client.post(f"/api/queue/{waiting}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_error(client.post(f"/api/queue/{good}/cancel"), 409, "invalid_state")

    # Delete, then it is gone.
    deleted = client.delete(f"/api/queue/{waiting}")
    assert deleted.status_code == 200 and deleted.json() == {"id": waiting, "deleted": True}
    assert_error(client.get(f"/api/jobs/{waiting}"), 404, "not_found", waiting)
    assert_error(client.delete(f"/api/queue/{waiting}"), 404, "not_found")

    # Purge completed jobs finished before a time in the future: both completed ones go.
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    kept = client.post("/api/queue/purge", json={"status": "completed", "olderThan": "2000-01-01T00:00:00Z"})
    assert kept.json() == {"purged": 0}
    purged = client.post("/api/queue/purge", json={"status": "completed", "olderThan": future})
    assert purged.status_code == 200 and purged.json() == {"purged": 2}
    assert client.get("/api/queue/stats").json()["counts"]["completed"] == 0


def test_purge_takes_a_time_or_an_age_under_either_spelling(client: httpx.Client) -> None:
    for i in range(3):
        enqueue(client, task="add", args=[i, i])
    assert process(client)["completed"] == 3
    old = {"status": "completed", "older_than": "7d"}
    assert client.post("/api/queue/purge", json=old).json() == {"purged": 0}, "none is a week old"
    assert client.post("/api/queue/purge", json={"status": "completed", "olderThan": "12h"}).json() == {
        "purged": 0
    }
    assert client.post("/api/queue/purge", json={"status": "completed", "older_than": "30m"}).json() == {
        "purged": 0
    }
    time.sleep(1.1)
    assert client.post("/api/queue/purge", json={"status": "completed", "older_than": "1s"}).json() == {
        "purged": 3
    }
    enqueue(client, task="add", args=[9, 9])
    process(client)
    # A time without an offset is UTC; POSIX seconds are a time too.
    soon = (datetime.now(UTC) + timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert client.post("/api/queue/purge", json={"status": "completed", "older_than": 0}).json() == {
        "purged": 0
    }
    assert client.post("/api/queue/purge", json={"status": "completed", "older_than": soon}).json() == {
        "purged": 1
    }


def test_process_takes_batch_size_under_either_spelling(client: httpx.Client) -> None:
    for i in range(3):
        enqueue(client, task="add", args=[i, i])
    first = client.post("/api/queue/process", params={"batch_size": 2})
    assert first.status_code == 200 and first.json()["processed"] == 2
    second = client.post("/api/queue/process", params={"batchSize": 5})
    assert second.status_code == 200 and second.json()["processed"] == 1


def test_delete_a_running_job_is_a_409(client: httpx.Client, tasks: conveyor.App) -> None:
    job_id = enqueue(client, task="slow", args=[0])
    claimed = tasks.backend.claim(ClaimRequest(("default",), 1, 30, "test-worker"))
    assert [c.id for c in claimed] == [job_id]
    assert_error(client.delete(f"/api/queue/{job_id}"), 409, "invalid_state", "processing")
    assert_error(client.post(f"/api/queue/{job_id}/retry"), 409, "invalid_state", "processing")
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "processing"


def test_unknown_job_is_a_404_on_every_job_route(client: httpx.Client) -> None:
    missing = "0" * 32
    assert_error(client.get(f"/api/jobs/{missing}"), 404, "not_found", missing)
    assert_error(client.post(f"/api/queue/{missing}/retry"), 404, "not_found")
    assert_error(client.post(f"/api/queue/{missing}/cancel"), 404, "not_found")
    assert_error(client.delete(f"/api/queue/{missing}"), 404, "not_found")
    assert_error(client.get("/api/audits", params={"job_id": missing}), 404, "not_found")


def test_health_metrics_openapi_and_dashboard_need_no_key(
    anonymous: httpx.Client, client: httpx.Client
) -> None:
    enqueue(client, task="send", args=["secret-address@example.com"])
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    metrics = anonymous.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'conveyor_jobs{queue="mail",status="pending"} 1.0' in metrics.text
    assert "conveyor_oldest_pending_age_seconds" in metrics.text
    assert 'conveyor_http_requests_total{method="POST",route="/api/jobs",status="201"} 1.0' in metrics.text
    assert "secret-address" not in metrics.text, "metrics carry counts only, never payloads"
    document = anonymous.get("/openapi.json").json()
    assert document["openapi"].startswith("3.") and "/api/jobs" in document["paths"]
    page = anonymous.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in page.headers and "assets/js/main.js" in page.text
    data_layer = anonymous.get("/assets/js/api.js")
    assert data_layer.status_code == 200 and "javascript" in data_layer.headers["content-type"]
    assert "x-api-key" in data_layer.text and "api/queue/stats" in data_layer.text


def test_unknown_route_and_wrong_method_keep_the_error_shape(client: httpx.Client) -> None:
    assert_error(client.get("/api/nothing"), 404, "not_found", "/api/nothing")
    error = assert_error(client.put("/api/jobs", json={}), 405, "method_not_allowed", "PUT", "POST")
    assert error


# -- OpenAPI ---------------------------------------------------------------------------------------------
def served_operations(tasks: conveyor.App) -> set[tuple[str, str]]:
    """(path, method) of every route of the Starlette app, HEAD aside."""
    operations = set()
    for route in create_app(tasks, [KEY]).routes:
        if isinstance(route, Mount) and route.path == "/assets":
            continue  # the dashboard's static files, not an API operation
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                operations.add((route.path, method.lower()))
    return operations


def test_openapi_document_lists_exactly_the_served_routes(tasks: conveyor.App) -> None:
    document = openapi_document()
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served_operations(tasks) == documented
    # Path parameters are declared where the path has them.
    for path, ops in document["paths"].items():
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), path
            assert "responses" in op and op.get("summary")


def test_openapi_document_describes_every_input_and_answer() -> None:
    document = openapi_document(["add"])
    schemas = document["components"]["schemas"]
    assert schemas["JobRequest"]["properties"]["task"]["enum"] == ["add"]
    assert schemas["JobRequest"]["additionalProperties"] is False, "unknown fields are refused"
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            answers = op["responses"]
            for status, answer in answers.items():
                assert answer["description"] and answer["content"], (method, path, status)
                for media in answer["content"].values():
                    assert media["schema"], (method, path, status)
            if path.startswith("/api/"):
                assert {"400", "401", "403"} <= set(answers), (method, path)
                assert "security" not in op, "the document-wide key requirement applies"
            else:
                assert op["security"] == [], path
            if method in ("post", "put", "patch") and "requestBody" in op:
                assert op["requestBody"]["content"]["application/json"]["schema"], path
                assert "413" in answers, path
    purge = document["paths"]["/api/queue/purge"]["post"]
    assert purge["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PurgeRequest"
    }
    assert set(schemas["PurgeRequest"]["required"]) == {"status", "older_than"}
    assert "olderThan" in purge["requestBody"]["description"]
    parameters = {p["name"]: p for p in document["paths"]["/api/queue/process"]["post"]["parameters"]}
    assert parameters["batch_size"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 500,
        "default": 10,
    }
    assert parameters["batchSize"]["deprecated"] is True
    listing = {p["name"]: p for p in document["paths"]["/api/queue"]["get"]["parameters"]}
    assert set(listing) == {
        "status", "queue", "task", "group", "limit", "offset", "created_after", "created_before", "error",
    }  # fmt: skip
    assert set(listing["status"]["schema"]["enum"]) == STATES


def test_docs_page_has_a_curl_example_for_every_route() -> None:
    lines = (Path(__file__).parent.parent / "docs" / "http-api.md").read_text().splitlines()
    curls = [line for line in lines if line.lstrip().startswith("curl ")]
    for path, ops in openapi_document()["paths"].items():
        # {job_id} is written $JOB in the examples, a schedule's or alert's {name} as the
        # example's own name, any other {param} as $PARAM.
        example = path.replace("{job_id}", "$JOB")
        if path.startswith(("/api/alerts", "/api/schedules")):
            example = example.replace("{name}", "ops" if path.startswith("/api/alerts") else "nightly-report")
        example = re.sub(r"\{(\w+)\}", lambda m: f"${m[1].upper()}", example)
        for method in ops:
            flag = f"-X {method.upper()}"
            matching = [
                c
                for c in curls
                if f'$CONVEYOR{example}"' in c or f"$CONVEYOR{example}?" in c or f"$CONVEYOR{example} " in c
            ]
            if method != "get":
                matching = [c for c in matching if flag in c]
            assert matching, f"no curl example for {method.upper()} {path} in docs/http-api.md"


# -- authentication ----------------------------------------------------------------------------------------
API_CALLS: list[tuple[str, str, Any]] = [
    ("POST", "/api/jobs", {"task": "add", "args": [1, 2]}),
    ("GET", "/api/jobs/{id}", None),
    ("GET", "/api/queue", None),
    ("GET", "/api/queue/stats", None),
    ("POST", "/api/queue/{id}/retry", None),
    ("POST", "/api/queue/{id}/cancel", None),
    ("DELETE", "/api/queue/{id}", None),
    ("POST", "/api/queue/purge", {"status": "failed", "olderThan": "2999-01-01T00:00:00Z"}),
    ("POST", "/api/queue/process", None),
    ("GET", "/api/audits", None),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": "wrong"},
        {"x-api-key": KEY[:-1]},  # a prefix of a valid key
        {"x-api-key": KEY + "0"},  # a valid key with more after it
        {"x-api-key": "X" + KEY[1:]},  # right length, wrong first character
        {"x-api-key": KEY.upper()},
        {"x-api-key": f"{KEY},{OTHER_KEY}"},
        {"authorization": f"Bearer {KEY}"},  # the key, in the wrong header
    ],
    ids=["missing", "empty", "wrong", "prefix", "longer", "first-char", "case", "two-keys", "bearer"],
)
def test_a_missing_or_wrong_key_is_a_401_and_changes_nothing(
    base_url: str, client: httpx.Client, tasks: conveyor.App, headers: dict[str, str]
) -> None:
    failed = enqueue(client, task="send", args=["a"])
    process(client)
    pending = enqueue(client, task="add", args=[1, 1])
    before = snapshot(tasks)
    with httpx.Client(base_url=base_url, headers=headers) as stranger:
        for method, path, body in API_CALLS:
            target = failed if "retry" in path else pending
            response = stranger.request(method, path.replace("{id}", target), json=body)
            error = assert_error(response, 401, "unauthorized")
            assert KEY not in error["message"] and OTHER_KEY not in error["message"]
    assert snapshot(tasks) == before


def test_non_ascii_key_bytes_are_a_401(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as stranger:
        response = stranger.get("/api/queue/stats", headers=[(b"x-api-key", "clé-ü".encode("latin-1"))])
    assert_error(response, 401, "unauthorized")


def test_every_configured_key_works(base_url: str) -> None:
    for key in (KEY, OTHER_KEY):
        with httpx.Client(base_url=base_url, headers={"x-api-key": key}) as c:
            assert c.get("/api/queue/stats").status_code == 200


def test_keys_are_compared_in_constant_time(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with httpx.Client(base_url=base_url) as c:
        for key in ("nope", KEY, OTHER_KEY):
            calls.clear()
            c.get("/api/queue/stats", headers={"x-api-key": key})
            # Every configured key is compared, whichever matched (or none did), with
            # fixed-length digests, so the time taken says nothing about the key.
            assert len(calls) == 2, calls
            assert all(len(a) == len(b) == 32 for a, b in calls)


def test_keys_never_appear_in_logs(
    tasks: conveyor.App, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# production\n{KEY}\n\nq7Zx\n")
    monkeypatch.setenv("CONVEYOR_API_KEYS", OTHER_KEY)
    caplog.set_level(logging.DEBUG)
    keys = load_api_keys(key_file)
    assert keys == [OTHER_KEY, KEY, "q7Zx"]
    with serving(create_app(tasks, keys)) as url, httpx.Client(base_url=url) as c:
        c.get("/api/queue/stats", headers={"x-api-key": KEY + "x"})
        c.get("/api/queue/stats", headers={"x-api-key": KEY})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "shorter than 16" in text, "a weak key is warned about (by position, not value)"
    for secret in (KEY, OTHER_KEY, "q7Zx"):
        assert secret not in text


def test_no_key_means_loopback_only(tasks: conveyor.App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_API_KEYS", raising=False)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ConfigurationError, match="without an API key") as info:
            run_server(tasks, host=host, port=free_port())
        assert "CONVEYOR_API_KEYS" in str(info.value) and "127.0.0.1" in str(info.value)


def test_keyless_server_answers_local_same_origin_requests_only(tasks: conveyor.App) -> None:
    port = free_port()
    with serving(create_app(tasks, []), port) as url, httpx.Client(base_url=url) as c:
        assert c.get("/api/queue/stats").status_code == 200
        same = c.post("/api/jobs", json={"task": "add", "args": [1, 1]}, headers={"origin": url})
        assert same.status_code == 201
        before = snapshot(tasks)
        # A web page elsewhere posting to the local server (CSRF), or a DNS-rebound name.
        cross = c.post(
            "/api/jobs", json={"task": "add", "args": [1, 1]}, headers={"origin": "https://evil.example"}
        )
        assert_error(cross, 403, "forbidden", "CONVEYOR_API_KEYS")
        rebound = c.get("/api/queue/stats", headers={"host": f"evil.example:{port}"})
        assert_error(rebound, 403, "forbidden")
        assert snapshot(tasks) == before


# -- bad input -------------------------------------------------------------------------------------------
INJECTION = "x'; DROP TABLE conveyor_jobs; --"

BAD_ENQUEUES: list[tuple[Any, int, str, str]] = [
    (b"{not json", 400, "malformed_json", "not valid JSON"),
    (b"", 400, "malformed_json", "empty"),
    (b'{"task": "add", "args": [NaN]}', 400, "malformed_json", "NaN"),
    (b'{"task": "add", "args": [1e999]}', 400, "malformed_json", "out of range"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "malformed_json", "nested too deeply"),
    (b"\xff\xfe\x00garbage", 400, "malformed_json", ""),
    ("just a string", 400, "invalid_request", "JSON object"),
    ([], 400, "invalid_request", "1 to 1000"),
    ({}, 400, "invalid_request", "'task'"),
    ({"task": 42}, 400, "invalid_request", "task must be a string"),
    ({"task": "add", "args": "1,2"}, 400, "invalid_request", "args must be a JSON array"),
    ({"task": "add", "kwargs": [1]}, 400, "invalid_request", "kwargs must be a JSON object"),
    ({"task": "add", "priority": "high"}, 400, "invalid_request", "priority"),
    ({"task": "add", "priority": True}, 400, "invalid_request", "priority"),
    ({"task": "add", "priority": 2**63}, 400, "invalid_request", "priority"),
    ({"task": "add", "max_attempts": 0}, 400, "invalid_request", "max_attempts"),
    ({"task": "add", "delay": -1}, 400, "invalid_request", "delay"),
    ({"task": "add", "delay": 1e300}, 400, "invalid_request", "delay"),
    ({"task": "add", "delay": 1, "run_at": "2030-01-01T00:00:00Z"}, 400, "invalid_request", "not both"),
    ({"task": "add", "run_at": "tomorrow"}, 400, "invalid_request", "'tomorrow'"),
    ({"task": "add", "run_at": "99999-01-01"}, 400, "invalid_request", "run_at"),
    ({"task": "add", "key": ""}, 400, "invalid_request", "key"),
    ({"task": "add", "key": "k" * 513}, 400, "invalid_request", "key"),
    ({"task": "add", "key_mode": "merge"}, 400, "invalid_request", "'merge'"),
    ({"task": "add", "on_complete": "ftp://x"}, 400, "invalid_request", "on_complete"),
    ({"task": "add", "on_complete": "javascript:alert(1)"}, 400, "invalid_request", "on_complete"),
    ({"task": "add", "colour": "red"}, 400, "invalid_request", "'colour'"),
    ({"task": "nope"}, 422, "unknown_task", "'nope'"),
    ({"task": INJECTION}, 422, "invalid_name", "DROP TABLE"),
    ({"task": "add", "queue": INJECTION}, 422, "invalid_name", "queue"),
    ({"task": "add", "queue": "a" * 129}, 422, "invalid_name", "queue"),
    ({"task": "add", "queue": "naïve"}, 422, "invalid_name", "queue"),
    ({"task": "conveyor.http", "kwargs": {}}, 400, "invalid_request", "url"),
    ({"task": "conveyor.http", "kwargs": {"url": "file:///etc/passwd"}}, 400, "invalid_request", "url"),
    (
        {"task": "conveyor.http", "kwargs": {"url": "http://x", "method": "BREW"}},
        400,
        "invalid_request",
        "BREW",
    ),
    (
        {"task": "conveyor.http", "kwargs": {"url": "http://x", "headers": {"X-A": "1\r\nX-B: 2"}}},
        400,
        "invalid_request",
        "line breaks",
    ),
    ([{"task": "add"}, {"task": "nope"}], 422, "unknown_task", "'nope'"),
    ([{"task": "add"}, "x"], 400, "invalid_request", "item 1"),
    (
        [{"task": "add"}, {"task": "add", "priority": "x"}],
        400,
        "invalid_request",
        "item 1: priority must be an integer from -2147483648 to 2147483647, got 'x'",
    ),
    ([{"task": "add"}] * 1001, 400, "invalid_request", "1 to 1000 items, got 1001"),
]


@pytest.mark.parametrize("body,status,code,mention", BAD_ENQUEUES)
def test_bad_enqueue_is_a_clear_4xx_and_stores_nothing(
    client: httpx.Client, tasks: conveyor.App, body: Any, status: int, code: str, mention: str
) -> None:
    existing = enqueue(client, task="add", args=[1, 2], key="existing")
    before = snapshot(tasks)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/api/jobs", content=content, headers={"content-type": "application/json"})
    assert_error(response, status, code, mention)
    assert len(response.text) < 2000, "messages stay short even for huge input"
    assert snapshot(tasks) == before
    assert tasks.get(existing).args == [1, 2]


def test_oversized_body_is_a_413(client: httpx.Client, tasks: conveyor.App) -> None:
    before = snapshot(tasks)
    huge = json.dumps({"task": "add", "args": ["x" * (2 * 1024 * 1024)]}).encode()
    assert_error(client.post("/api/jobs", content=huge), 413, "payload_too_large", "bytes")
    # Without a Content-Length (chunked), the limit still holds while streaming.
    chunks = (huge[i : i + 65536] for i in range(0, len(huge), 65536))
    assert_error(client.post("/api/jobs", content=chunks), 413, "payload_too_large")
    assert snapshot(tasks) == before


def test_payload_over_the_app_limit_is_a_413(base_url: str, tasks: conveyor.App) -> None:
    tasks.settings = replace(tasks.settings, max_payload_bytes=1000)
    before = snapshot(tasks)
    with httpx.Client(base_url=base_url, headers={"x-api-key": KEY}) as c:
        response = c.post("/api/jobs", json={"task": "add", "args": ["x" * 2000, 1]})
    assert_error(response, 413, "payload_too_large", "1,000")
    assert snapshot(tasks) == before


BAD_QUERIES: list[tuple[str, dict[str, str], int, str, str]] = [
    ("/api/queue", {"status": "done"}, 422, "unknown_status", "'done'"),
    ("/api/queue", {"status": INJECTION}, 422, "unknown_status", "expected one of"),
    ("/api/queue", {"queue": INJECTION}, 422, "invalid_name", "queue"),
    ("/api/queue", {"task": "a b"}, 422, "invalid_name", "task"),
    ("/api/queue", {"limit": "-1"}, 400, "invalid_request", "limit"),
    ("/api/queue", {"limit": "501"}, 400, "invalid_request", "0 to 500"),
    ("/api/queue", {"limit": "99999999999999999999999"}, 400, "invalid_request", "limit"),
    ("/api/queue", {"limit": "ten"}, 400, "invalid_request", "'ten'"),
    ("/api/queue", {"offset": "-5"}, 400, "invalid_request", "offset"),
    ("/api/queue", {"created_after": "yesterday"}, 400, "invalid_request", "created_after"),
    ("/api/queue", {"stauts": "failed"}, 400, "invalid_request", "'stauts'"),
    ("/api/audits", {"limit": "1000"}, 400, "invalid_request", "limit"),
    ("/api/audits", {"job_id": INJECTION}, 404, "not_found", "DROP TABLE"),
    ("/api/queue/process", {"batchSize": "0"}, 400, "invalid_request", "batchSize"),
    ("/api/queue/process", {"batchSize": "100000"}, 400, "invalid_request", "batchSize"),
    ("/api/queue/process", {"batch_size": "0"}, 400, "invalid_request", "batch_size must be an integer"),
    ("/api/queue/process", {"batch_size": "2", "batchSize": "3"}, 400, "invalid_request", "not both"),
    ("/api/queue/stats", {"verbose": "1"}, 400, "invalid_request", "'verbose'; valid: none"),
    ("/api/throughput", {"minutes": "0"}, 400, "invalid_request", "1 to 1440"),
    ("/api/throughput", {"minutes": "1441"}, 400, "invalid_request", "1 to 1440"),
    ("/api/throughput", {"minutes": "an hour"}, 400, "invalid_request", "'an hour'"),
    ("/api/throughput", {"queue": INJECTION}, 422, "invalid_name", "queue"),
    ("/api/throughput", {"window": "60"}, 400, "invalid_request", "'window'"),
]


@pytest.mark.parametrize("path,params,status,code,mention", BAD_QUERIES)
def test_bad_query_is_a_clear_4xx_and_changes_nothing(
    client: httpx.Client,
    tasks: conveyor.App,
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
    mention: str,
) -> None:
    enqueue(client, task="add", args=[1, 2])
    before = snapshot(tasks)
    method = "POST" if path.endswith("process") else "GET"
    assert_error(client.request(method, path, params=params), status, code, mention)
    assert snapshot(tasks) == before


@pytest.mark.parametrize(
    "job_id",
    [INJECTION, "1 OR 1=1", "../../etc/passwd", "%00", "a" * 5000, "é", "0" * 32],
    ids=["sql", "or", "traversal", "nul", "long", "unicode", "unknown"],
)
def test_injection_shaped_ids_are_404s(client: httpx.Client, tasks: conveyor.App, job_id: str) -> None:
    enqueue(client, task="add", args=[1, 2])
    before = snapshot(tasks)
    quoted = quote(job_id, safe="")
    for method, path in [
        ("GET", f"/api/jobs/{quoted}"),
        ("POST", f"/api/queue/{quoted}/retry"),
        ("POST", f"/api/queue/{quoted}/cancel"),
        ("DELETE", f"/api/queue/{quoted}"),
    ]:
        response = client.request(method, path)
        assert_error(response, 404, "not_found")
    assert snapshot(tasks) == before


BAD_ADMIN_BODIES: list[tuple[str, Any, int, str, str]] = [
    ("/api/queue/purge", {"status": "completed"}, 400, "invalid_request", "olderThan"),
    ("/api/queue/purge", {"olderThan": "2020-01-01"}, 400, "invalid_request", "status"),
    (
        "/api/queue/purge",
        {"status": "pending", "olderThan": "2020-01-01"},
        422,
        "unknown_status",
        "'pending'",
    ),
    ("/api/queue/purge", {"status": "gone", "olderThan": "2020-01-01"}, 422, "unknown_status", "'gone'"),
    ("/api/queue/purge", {"status": 1, "olderThan": "2020-01-01"}, 400, "invalid_request", "status"),
    ("/api/queue/purge", {"status": "failed", "olderThan": "soon"}, 400, "invalid_request", "olderThan"),
    (
        "/api/queue/purge",
        {"status": "failed", "olderThan": "2020-01-01", "all": True},
        400,
        "invalid_request",
        "all",
    ),
    ("/api/queue/purge", [1], 400, "invalid_request", "JSON object"),
    ("/api/queue/purge", {"status": "failed", "older_than": "7x"}, 400, "invalid_request", '"7d"'),
    ("/api/queue/purge", {"status": "failed", "older_than": "-1d"}, 400, "invalid_request", "older_than"),
    (
        "/api/queue/purge",
        {"status": "failed", "older_than": "7d", "olderThan": "1d"},
        400,
        "invalid_request",
        "give older_than or olderThan, not both",
    ),
    ("/api/queue/purge", {"status": "failed"}, 400, "invalid_request", "'older_than' (or 'olderThan')"),
    ("/api/queue/purge", b"{", 400, "malformed_json", ""),
    ("/api/queue/{failed}/retry", {"args": "x"}, 400, "invalid_request", "args"),
    ("/api/queue/{failed}/retry", {"kwargs": [1]}, 400, "invalid_request", "kwargs"),
    ("/api/queue/{failed}/retry", {"arguments": []}, 400, "invalid_request", "arguments"),
    ("/api/queue/{failed}/retry", b"nope", 400, "malformed_json", ""),
]


@pytest.mark.parametrize("path,body,status,code,mention", BAD_ADMIN_BODIES)
def test_bad_admin_bodies_are_clear_4xx_and_change_nothing(
    client: httpx.Client, tasks: conveyor.App, path: str, body: Any, status: int, code: str, mention: str
) -> None:
    failed = enqueue(client, task="send", args=["a"])
    process(client)
    before = snapshot(tasks)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path.replace("{failed}", failed), content=content)
    assert_error(response, status, code, mention)
    assert snapshot(tasks) == before
    assert tasks.get(failed).state == "failed"


def test_one_failing_request_does_not_fail_the_requests_sharing_its_write(
    tasks: conveyor.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = ServerState(tasks, KeyChecker([KEY]), Metrics(tasks))
    real = tasks.backend.enqueue_many
    writes: list[int] = []

    def enqueue_many(jobs: Any, connection: Any = None) -> Any:
        writes.append(len(jobs))
        if any(job.key == "poison" for job in jobs):
            raise RuntimeError("the store refused this one")
        return real(jobs, connection)

    monkeypatch.setattr(tasks.backend, "enqueue_many", enqueue_many)

    async def main() -> list[Any]:
        requests = [
            [{"task": "add", "args": [1, 1]}],
            [{"task": "add", "args": [2, 2], "key": "poison"}],
            [{"task": "add", "args": [3, 3]}, {"task": "add", "args": [4, 4]}],
        ]
        stores = (state.store(state.prepare(r)) for r in requests)
        return await asyncio.gather(*stores, return_exceptions=True)

    first, poisoned, third = asyncio.run(main())
    assert writes[0] == 4, "the three requests shared one write"
    assert isinstance(poisoned, RuntimeError)
    assert len(first) == 1 and len(third) == 2 and all(r.created for r in first + third)
    assert sorted(r.args for r in tasks.jobs().items) == [[1, 1], [3, 3], [4, 4]]


def test_throughput_counts_completed_and_failed_jobs_per_minute(
    client: httpx.Client, tasks: conveyor.App
) -> None:
    for n in range(3):
        enqueue(client, task="add", args=[n, 1])
    enqueue(client, task="send", args=["a@example.com"])  # fails for good (one attempt)
    enqueue(client, task="send", args=["b@example.com"], kwargs={"ok": True})
    assert client.post("/api/queue/process", params={"batch_size": 10}).status_code == 200
    body = client.get("/api/throughput").raise_for_status().json()
    assert set(body) == {"queue", "now", "completed", "failed", "minutes"}
    assert (body["completed"], body["failed"], body["queue"]) == (4, 1, None)
    assert len(body["minutes"]) == 60, "the default window is the last hour"
    assert sum(m["completed"] for m in body["minutes"]) == 4
    assert sum(m["failed"] for m in body["minutes"]) == 1
    starts = [datetime.fromisoformat(m["start"]) for m in body["minutes"]]
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(starts))
    assert starts[-1] <= datetime.fromisoformat(body["now"]) < starts[-1] + timedelta(minutes=1)
    mail = client.get("/api/throughput", params={"minutes": 5, "queue": "mail"}).raise_for_status().json()
    assert (mail["completed"], mail["failed"], mail["queue"], len(mail["minutes"])) == (1, 1, "mail", 5)
    direct = tasks.throughput(5, "mail")  # the App's own answer (Python API) agrees
    assert (direct.completed, direct.failed) == (mail["completed"], mail["failed"])
