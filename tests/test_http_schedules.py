"""The HTTP routes of schedules and failure alerts: shapes, status codes, bad input refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import conveyor
from conveyor.server import create_app

KEY = "schedule-key-5f2b9c0e4d7a41e8"


@pytest.fixture
def client(app: conveyor.App) -> Iterator[TestClient]:
    @app.task()
    def report(kind: str = "daily") -> str:
        return kind

    with TestClient(create_app(app, [KEY]), headers={"x-api-key": KEY}) as c:
        yield c


def test_schedule_routes_create_list_pause_resume_run_delete(client: TestClient, app: conveyor.App) -> None:
    body = {"name": "nightly-report", "task": "report", "cron": "0 2 * * *", "tz": "Europe/Berlin"}
    created = client.post("/api/schedules", json={**body, "kwargs": {"kind": "daily"}})
    assert created.status_code == 201, created.text
    assert created.json()["kwargs"] == {"kind": "daily"} and created.json()["paused"] is False
    assert client.post("/api/schedules", json=body).status_code == 200, "an update of an existing one"
    (listed,) = client.get("/api/schedules").json()["items"]
    assert listed["name"] == "nightly-report" and listed["next_run_at"].endswith("+00:00")
    assert client.post("/api/schedules/nightly-report/pause").json()["paused"] is True
    assert client.post("/api/schedules/nightly-report/resume").json()["paused"] is False
    ran = client.post("/api/schedules/nightly-report/run")
    assert ran.status_code == 201
    job = client.get(f"/api/jobs/{ran.json()['id']}").json()
    assert job["schedule"] == "nightly-report" and job["scheduled_for"] is not None
    assert client.delete("/api/schedules/nightly-report").json() == {
        "name": "nightly-report",
        "deleted": True,
    }
    missing = client.delete("/api/schedules/nightly-report")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.post("/api/schedules/nope/run").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x", "task": "report", "cron": "61 * * * *"}, 400, "invalid_schedule"),
        ({"name": "x", "task": "report", "cron": "0 2 * * *", "tz": "Mars/Base"}, 400, "invalid_schedule"),
        ({"name": "x", "task": "nope", "every": 60}, 422, "unknown_task"),
        ({"name": "x", "task": "report", "every": 60, "color": "red"}, 400, "invalid_request"),
        ({"name": "x", "task": "report", "every": 60, "args": {}}, 400, "invalid_request"),
        ({"task": "report", "every": 60}, 400, "invalid_request"),
    ],
)
def test_bad_schedules_are_refused(
    client: TestClient, body: dict[str, object], status: int, code: str
) -> None:
    answer = client.post("/api/schedules", json=body)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert client.get("/api/schedules").json()["items"] == []


def test_alert_routes(client: TestClient) -> None:
    body = {"name": "ops", "url": "https://hooks.example.com/x", "threshold": 10, "window": "5m"}
    created = client.post("/api/alerts", json=body)
    assert created.status_code == 201 and created.json()["window"] == "5m"
    assert client.post("/api/alerts", json={**body, "threshold": 5}).status_code == 200
    (listed,) = client.get("/api/alerts").json()["items"]
    assert listed["threshold"] == 5 and listed["last_fired_at"] is None
    bad = client.post("/api/alerts", json={**body, "name": "neg", "window": "-5m"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_alert"
    negative = client.post("/api/alerts", json={**body, "name": "neg", "window": -300})
    assert negative.status_code == 400 and "window" in negative.json()["error"]["message"]
    assert [a["name"] for a in client.get("/api/alerts").json()["items"]] == ["ops"]
    assert client.delete("/api/alerts/ops").status_code == 200
    assert client.delete("/api/alerts/ops").status_code == 404
    assert client.get("/api/alerts", headers={"x-api-key": "wrong"}).status_code == 401
