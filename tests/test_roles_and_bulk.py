"""Key roles on every declared route, the bulk actions over HTTP, and the action trail they leave.

The role matrix is generated from the route table: a route added later is covered
without touching this file. Each role x route: an allowed call is never a 401/403; a
refused one is a 403 naming the role needed, and the store (jobs, counts, actions) is
exactly as it was.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import conveyor
from conveyor.backends.memory import drop_store
from conveyor.errors import ConfigurationError
from conveyor.server import create_app
from conveyor.server.auth import ROLES, KeyChecker, allows, load_api_keys, parse_key
from conveyor.server.routes import API, openapi_document
from conveyor.server.routing import Call, RouteTable
from test_http_api import serving

READ_KEY = "viewer-key-0a1b2c3d4e5f6789"
WRITE_KEY = "writer-key-9f8e7d6c5b4a3210"
ADMIN_KEY = "admin-key-00112233445566778899"
KEYS = [f"read:viewer:{READ_KEY}", f"write:{WRITE_KEY}", ADMIN_KEY]
BY_ROLE = {"read": READ_KEY, "write": WRITE_KEY, "admin": ADMIN_KEY}
#: Bodies that make each body-taking route do something real; others get ``{}``.
EXAMPLE_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/jobs"): {"task": "boom", "args": ["x"]},
    ("POST", "/api/queue/purge"): {"status": "failed", "older_than": "0s"},
    ("POST", "/api/queue/retry"): {"status": "failed"},
    ("POST", "/api/queue/delete"): {"status": "failed"},
    ("PATCH", "/api/queues/{name}"): {"concurrency": 5},
    ("POST", "/api/schedules"): {"name": "default", "task": "boom", "every": 3600, "args": ["tick"]},
    ("POST", "/api/alerts"): {
        "name": "default",
        "url": "https://hooks.example.com/x",
        "threshold": 5,
        "window": "5m",
    },
}
AUTH_ROUTES = [r for r in API.routes if r.auth]


def build_app(url: str) -> conveyor.App:
    app = conveyor.App(url)

    @app.task(max_attempts=1, queue="roles")
    def boom(note: str) -> None:
        raise RuntimeError(f"boom: {note}")

    return app


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, conveyor.App]]:
    name = f"roles-{secrets.token_hex(4)}"
    app = build_app(f"memory://{name}")
    with serving(create_app(app, KEYS)) as url:
        yield url, app
    app.close()
    drop_store(name)


def failed_job(app: conveyor.App) -> str:
    job = app.enqueue("boom", ["matrix"])
    conveyor.Worker(app, queues=["roles"], install_signal_handlers=False).process_batch(500)
    assert app.get(job.id).state == "failed"
    return job.id


def snapshot(app: conveyor.App) -> tuple[Any, ...]:
    jobs = sorted((j.id, j.state, j.attempt, j.args) for j in app.jobs(limit=500))
    return jobs, app.stats()["counts"], [a.id for a in app.actions(limit=500)]


def call(client: httpx.Client, route: Any, job_id: str) -> httpx.Response:
    path = re.sub(r"{job_id}", job_id, route.path)
    path = re.sub(r"{\w+}", "default", path)  # other path parameters (queue or schedule names)
    body = EXAMPLE_BODIES.get((route.method, route.path), {} if route.body is not None else None)
    return client.request(route.method, path, json=body)


@pytest.mark.parametrize("route", AUTH_ROUTES, ids=[f"{r.method} {r.path}" for r in AUTH_ROUTES])
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(site: tuple[str, conveyor.App], route: Any, role: str) -> None:
    url, app = site
    job_id = failed_job(app)
    before = snapshot(app)
    with httpx.Client(base_url=url, headers={"x-api-key": BY_ROLE[role]}, timeout=30) as client:
        response = call(client, route, job_id)
    if allows(role, route.role):
        assert response.status_code not in (401, 403), response.text
        return
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert f"needs the {route.role} role" in error["message"] and f"the {role} role" in error["message"]
    assert snapshot(app) == before, "a refused request changes nothing"


@pytest.mark.parametrize("route", AUTH_ROUTES, ids=[f"{r.method} {r.path}" for r in AUTH_ROUTES])
def test_no_key_is_a_401_on_every_route_and_changes_nothing(
    site: tuple[str, conveyor.App], route: Any
) -> None:
    url, app = site
    job_id = failed_job(app)
    before = snapshot(app)
    with httpx.Client(base_url=url, headers={"x-api-key": "not-a-key-at-all-000"}, timeout=30) as client:
        assert call(client, route, job_id).status_code == 401
    assert snapshot(app) == before


def test_the_declared_roles_are_the_specified_ones() -> None:
    declared = {(r.method, r.path): r.role for r in AUTH_ROUTES}
    assert all(role == "read" for (method, _), role in declared.items() if method == "GET")
    assert declared["GET", "/api/workers"] == "read"
    assert declared["GET", "/api/throughput"] == "read"
    for operation in ("POST /api/jobs", "POST /api/queue/{job_id}/retry", "POST /api/queue/{job_id}/cancel"):
        method, path = operation.split(" ")
        assert declared[method, path] == "write", operation
    for operation in ("POST /api/queue/process", "POST /api/queue/retry"):
        method, path = operation.split(" ")
        assert declared[method, path] == "write", operation
    for operation in ("DELETE /api/queue/{job_id}", "POST /api/queue/purge", "POST /api/queue/delete"):
        method, path = operation.split(" ")
        assert declared[method, path] == "admin", operation
    for path in ("/api/queues", "/api/schedules", "/api/alerts"):
        assert declared["GET", path] == "read", path
    for operation in (
        "PATCH /api/queues/{name}",
        "POST /api/queues/{name}/pause",
        "POST /api/queues/{name}/resume",
        "POST /api/schedules",
        "DELETE /api/schedules/{name}",
        "POST /api/schedules/{name}/pause",
        "POST /api/schedules/{name}/resume",
        "POST /api/schedules/{name}/run",
        "POST /api/alerts",
        "DELETE /api/alerts/{name}",
    ):
        method, path = operation.split(" ")
        assert declared[method, path] == "admin", operation


def test_a_new_mutating_route_needs_admin_unless_it_says_otherwise() -> None:
    table = RouteTable()

    @table.route("POST", "/api/thing", responses={200: dict})
    async def thing(call: Call[None, None]) -> Any: ...

    @table.route("GET", "/api/things", responses={200: dict})
    async def things(call: Call[None, None]) -> Any: ...

    assert [r.role for r in table.routes] == ["admin", "read"]
    with pytest.raises(ValueError, match="role must be one of read, write, admin"):
        table.route("POST", "/api/x", responses={}, role="owner")  # type: ignore[arg-type]


def test_openapi_says_each_operations_role() -> None:
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/api/"):
                assert "x-conveyor-role" not in operation
                continue
            role = operation["x-conveyor-role"]
            assert role in ROLES and role in operation["description"], (method, path)
            assert "403" in operation["responses"]


# -- keys ----------------------------------------------------------------------------------------------
def test_key_entries_and_the_names_the_trail_gives_them() -> None:
    bare = parse_key("s3cret-value-0123456789")
    assert (bare.role, bare.secret) == ("admin", "s3cret-value-0123456789")
    assert re.fullmatch(r"[0-9a-f]{8}", bare.name) and bare.actor.name == f"admin:{bare.name}"
    assert parse_key("read:abc").actor.name.startswith("read:") and parse_key("read:abc").secret == "abc"
    named = parse_key("write:ops-7f3a:with:colons")
    assert (named.role, named.name, named.secret) == ("write", "ops-7f3a", "with:colons")
    assert parse_key("owner:abc").role == "admin", "an unknown prefix is part of a bare key"
    assert "secret" not in repr(parse_key("read:ops:secret"))
    with pytest.raises(ConfigurationError, match="name"):
        parse_key("read:bad name:secret")
    with pytest.raises(ConfigurationError, match="empty key"):
        parse_key("read:")
    checker = KeyChecker(KEYS)
    found = checker.identify(READ_KEY.encode())
    assert found is not None and found.actor.name == "read:viewer" and found.role == "read"
    assert checker.identify(f"read:viewer:{READ_KEY}".encode()) is None, "the key is the part after the role"
    assert checker.identify(b"nope") is None


def test_roles_come_from_the_environment_and_the_key_file(tmp_path: Any) -> None:
    path = tmp_path / "keys"
    path.write_text("# ops\nadmin:ops:file-key-aaaaaaaaaaaaaaaa\n")
    keys = load_api_keys(path, {"CONVEYOR_API_KEYS": f"read:{READ_KEY}, {WRITE_KEY}"})
    assert [parse_key(k).role for k in keys] == ["read", "admin", "admin"]


# -- bulk actions and the trail over HTTP ---------------------------------------------------------------
@pytest.fixture
def fresh() -> Iterator[tuple[httpx.Client, httpx.Client, conveyor.App]]:
    """A server on its own store: an admin client and a read-only one."""
    name = f"bulk-{secrets.token_hex(4)}"
    app = build_app(f"memory://{name}")
    with (
        serving(create_app(app, KEYS)) as url,
        httpx.Client(base_url=url, headers={"x-api-key": ADMIN_KEY}, timeout=30) as admin,
        httpx.Client(base_url=url, headers={"x-api-key": READ_KEY}, timeout=30) as reader,
    ):
        yield admin, reader, app
    app.close()
    drop_store(name)


def fail_with(app: conveyor.App, *notes: str) -> list[str]:
    ids = [app.enqueue("boom", [note]).id for note in notes]
    conveyor.Worker(app, queues=["roles"], install_signal_handlers=False).process_batch(100)
    return ids


def test_bulk_retry_dry_run_counts_then_the_real_run_matches(
    fresh: tuple[httpx.Client, httpx.Client, conveyor.App],
) -> None:
    admin, _, app = fresh
    timeouts = fail_with(app, "timeout 1", "timeout 2", "timeout 3")
    fail_with(app, "refused")
    listed = admin.get("/api/queue", params={"status": "failed", "error": "boom: timeout"}).json()
    assert listed["total"] == 3 and {j["id"] for j in listed["items"]} == set(timeouts)
    before = snapshot(app)
    dry = admin.post("/api/queue/retry", json={"error": "boom: timeout", "dry_run": True})
    assert dry.json() == {"dry_run": True, "matched": 3, "resubmitted": 0}
    assert snapshot(app) == before, "a dry run changes nothing (not even the trail)"
    real = admin.post("/api/queue/retry", json={"error": "boom: timeout", "queue": "roles"})
    assert real.json() == {"dry_run": False, "matched": 3, "resubmitted": 3}
    assert {app.get(i).state for i in timeouts} == {"pending"}
    assert app.stats()["counts"]["failed"] == 1
    (action,) = admin.get("/api/actions").json()["items"]
    assert action["action"] == "resubmit_many" and action["count"] == 3
    assert action["actor"].startswith("admin:") and ADMIN_KEY not in str(action)
    assert action["detail"] == {"filter": {"status": "failed", "queue": "roles", "error": "boom: timeout"}}
    history = admin.get("/api/actions", params={"job_id": timeouts[0]}).json()["items"]
    assert [h["action"] for h in history] == ["resubmit_many"]
    assert admin.post("/api/queue/retry", json={"status": "completed"}).status_code == 422


def test_bulk_delete_dry_run_then_real_run_and_its_refusals(
    fresh: tuple[httpx.Client, httpx.Client, conveyor.App],
) -> None:
    admin, reader, app = fresh
    fail_with(app, "a", "b")
    waiting = app.enqueue("boom", ["later"])
    before = snapshot(app)
    forged = reader.post("/api/queue/delete", json={"status": "failed"})
    assert forged.status_code == 403 and "needs the admin role" in forged.json()["error"]["message"]
    assert snapshot(app) == before
    no_filter = admin.post("/api/queue/delete", json={"dry_run": True})
    assert no_filter.status_code == 422 and "at least one filter" in no_filter.json()["error"]["message"]
    dry = admin.post("/api/queue/delete", json={"queue": "roles", "dry_run": True}).json()
    assert dry == {"dry_run": True, "matched": 3, "deleted": 0, "skipped": 0}
    assert snapshot(app) == before
    real = admin.post("/api/queue/delete", json={"queue": "roles"}).json()
    assert real == {"dry_run": False, "matched": 3, "deleted": 3, "skipped": 0}
    assert app.jobs().total == 0
    trail = admin.get("/api/actions", params={"job_id": waiting.id}).json()["items"]
    assert [(t["action"], t["count"]) for t in trail] == [("delete_many", 3)]


def test_each_action_names_the_key_that_did_it(
    fresh: tuple[httpx.Client, httpx.Client, conveyor.App],
) -> None:
    admin, reader, app = fresh
    (job_id,) = fail_with(app, "x")
    with httpx.Client(base_url=str(admin.base_url), headers={"x-api-key": WRITE_KEY}) as writer:
        assert writer.get("/api/key").json() == {"role": "write", "actor": parse_key(KEYS[1]).actor.name}
        assert writer.post(f"/api/queue/{job_id}/retry", json={"args": ["y"]}).status_code == 200
        assert writer.post(f"/api/queue/{job_id}/cancel").status_code == 200
        assert writer.delete(f"/api/queue/{job_id}").status_code == 403
    assert reader.get("/api/key").json() == {"role": "read", "actor": "read:viewer"}
    assert admin.delete(f"/api/queue/{job_id}").status_code == 200
    history = reader.get("/api/actions", params={"job_id": job_id}).json()["items"]
    writer_name = parse_key(KEYS[1]).actor.name
    assert [(h["action"], h["actor"], h["role"]) for h in history] == [
        ("delete", parse_key(ADMIN_KEY).actor.name, "admin"),
        ("cancel", writer_name, "write"),
        ("resubmit", writer_name, "write"),
    ]
    assert history[2]["detail"] == {"edited": True, "previous": {"args": ["x"], "kwargs": {}}}
    for secret in (READ_KEY, WRITE_KEY, ADMIN_KEY):
        assert secret not in str(history)


def test_queue_settings_and_pauses_over_http_are_in_the_trail(
    fresh: tuple[httpx.Client, httpx.Client, conveyor.App],
) -> None:
    admin, reader, _ = fresh
    assert reader.patch("/api/queues/roles", json={"concurrency": 2}).status_code == 403
    assert admin.patch("/api/queues/roles", json={"concurrency": 2, "rate_limit": None}).status_code == 200
    assert admin.post("/api/queues/roles/pause").status_code == 200
    assert admin.post("/api/queues/roles/resume").status_code == 200
    assert reader.get("/api/queues").json()["items"][0]["concurrency"] == 2
    trail = reader.get("/api/actions").json()["items"]
    admin_name = parse_key(ADMIN_KEY).actor.name
    assert [(t["action"], t["actor"], t["role"], t["count"]) for t in trail] == [
        ("queue_resume", admin_name, "admin", 0),
        ("queue_pause", admin_name, "admin", 0),
        ("queue_update", admin_name, "admin", 0),
    ]
    assert trail[2]["detail"] == {"queue": "roles", "settings": {"concurrency": 2, "rate_limit": None}}
    assert trail[0]["detail"] == {"queue": "roles"}


def test_schedule_and_alert_changes_over_http_are_in_the_trail(
    fresh: tuple[httpx.Client, httpx.Client, conveyor.App],
) -> None:
    admin, reader, _ = fresh
    body = {"name": "hourly", "task": "boom", "every": 3600, "args": ["tick"]}
    assert reader.post("/api/schedules", json=body).status_code == 403
    assert admin.post("/api/schedules", json=body).status_code == 201
    assert admin.post("/api/schedules", json=body).status_code == 200, "saved again unchanged"
    assert admin.post("/api/schedules/hourly/pause").status_code == 200
    assert admin.post("/api/schedules/hourly/resume").status_code == 200
    run = admin.post("/api/schedules/hourly/run").json()
    assert admin.delete("/api/schedules/hourly").status_code == 200
    alert = {"name": "ops", "url": "https://hooks.example.com/T0K3N", "threshold": 3, "window": "5m"}
    assert admin.post("/api/alerts", json=alert).status_code == 201
    assert admin.delete("/api/alerts/ops").status_code == 200
    assert reader.delete("/api/alerts/ops").status_code == 403
    trail = reader.get("/api/actions").json()["items"]
    admin_name = parse_key(ADMIN_KEY).actor.name
    assert {t["actor"] for t in trail} == {admin_name}
    assert [t["action"] for t in trail] == [
        "alert_delete",
        "alert_save",
        "schedule_delete",
        "schedule_run",
        "schedule_resume",
        "schedule_pause",
        "schedule_save",
    ], "an unchanged save changes nothing and is not recorded"
    assert trail[-1]["detail"] == {
        "schedule": "hourly",
        "task": "boom",
        "tz": "UTC",
        "queue": None,
        "every": 3600.0,
    }
    assert trail[3]["count"] == 1 and trail[3]["job_id"] == run["id"]
    assert [
        t["action"] for t in reader.get("/api/actions", params={"job_id": run["id"]}).json()["items"]
    ] == ["schedule_run"]
    assert "T0K3N" not in str(trail), "an alert's URL may carry a token: not in the trail"
