"""Flow control over HTTP: the queues routes, the group field and filter, bad limits, OpenAPI."""

from __future__ import annotations

import httpx

import conveyor
import test_http_api as http_api
from test_http_api import assert_error, enqueue

# The HTTP API tests' fixtures: an app with tasks, a real server, a client with a key.
tasks = http_api.tasks
base_url = http_api.base_url
client = http_api.client


def test_queues_routes_set_pause_resume_and_list(client: httpx.Client, tasks: conveyor.App) -> None:
    enqueue(client, task="add", args=[1, 2])
    patched = client.patch("/api/queues/default", json={"concurrency": 3, "rate_limit": "100/m"})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["concurrency"], body["rate_limit"], body["paused"]) == (3, "100/m", False)
    assert body["counts"]["pending"] == 1
    assert client.patch("/api/queues/default", json={"rate_limit": None}).json()["rate_limit"] is None
    assert client.post("/api/queues/default/pause").json()["paused"] is True
    assert tasks.queue("default")["paused"] is True
    items = client.get("/api/queues").json()["items"]
    (default,) = [q for q in items if q["name"] == "default"]
    assert default["paused"] is True and default["concurrency"] == 3
    assert client.post("/api/queues/default/resume").json()["paused"] is False


def test_bad_limits_are_422_or_400_and_change_nothing(client: httpx.Client, tasks: conveyor.App) -> None:
    client.patch("/api/queues/default", json={"concurrency": 2})
    assert_error(
        client.patch("/api/queues/default", json={"rate_limit": "ten/s"}), 422, "invalid_limit", "ten/s"
    )
    assert_error(
        client.patch("/api/queues/default", json={"rate_limit": "5/fortnight"}),
        422,
        "invalid_limit",
        "5/fortnight",
    )
    assert_error(client.patch("/api/queues/default", json={"concurrency": 0}), 422, "invalid_limit", "0")
    assert_error(client.patch("/api/queues/default", json={"concurrency": -1}), 422, "invalid_limit", "-1")
    assert client.patch("/api/queues/default", json={"concurrency": "ten"}).status_code == 400
    assert client.patch("/api/queues/default", json={"speed": 1}).status_code == 400
    assert client.patch("/api/queues/bad name!", json={"concurrency": 1}).status_code == 422
    queue = tasks.queue("default")
    assert queue["concurrency"] == 2 and queue["rate_limit"] is None


def test_group_field_is_stored_shown_and_filtered(client: httpx.Client) -> None:
    a = enqueue(client, task="add", args=[1, 2], group="tenant-1")
    enqueue(client, task="add", args=[3, 4], group="tenant-2")
    assert client.get(f"/api/jobs/{a}").json()["group"] == "tenant-1"
    page = client.get("/api/queue", params={"group": "tenant-1"}).json()
    assert [item["id"] for item in page["items"]] == [a] and page["total"] == 1
    too_long = client.post("/api/jobs", json={"task": "add", "args": [1, 2], "group": "x" * 201})
    assert too_long.status_code == 400, too_long.text


def test_openapi_documents_the_queues_routes(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "get" in paths["/api/queues"]
    assert "patch" in paths["/api/queues/{name}"]
    assert "post" in paths["/api/queues/{name}/pause"] and "post" in paths["/api/queues/{name}/resume"]
