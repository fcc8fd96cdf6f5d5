"""Scenario 12, bad input and injection through every door: typed errors, nothing stored or changed.

Hypothesis generates names full of SQL and Lua metacharacters, and the payloads
a careless or hostile producer sends (NaN, infinities, deep nesting, 1 MiB + 1,
objects JSON cannot hold; over HTTP also invalid UTF-8 and malformed JSON).
They go through the Python API, the HTTP API and the CLI. Each must be refused
with a typed error (an exception of ``conveyor.errors``, an HTTP 4xx with the
error shape, a CLI exit status of 1 or 2), never a 5xx or a driver's error; and
afterwards the store holds no job and its schema (tables, columns, functions) or
keyspace is exactly as before.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import conveyor
from conveyor import errors
from conveyor.cli import main as cli
from torture.checker import check
from torture.harness import scale

META = [
    "'",
    '"',
    ";",
    "--",
    "/*",
    "*/",
    "\\",
    "%",
    "_",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\x00",
    "$1",
    "' OR '1'='1",
    "'; DROP TABLE jobs; --",
    "]]..redis.call('FLUSHALL')..[[",
    "\n",
    "\u202e",
    "é",
    " ",
]
names = (
    st.lists(st.sampled_from(META) | st.text(max_size=8), min_size=1, max_size=6).map("".join).filter(bool)
)
EXAMPLES = int(scale(15, 400))
TYPED = (errors.ConveyorError, ValueError, LookupError)
LIMIT = 1024 * 1024


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def shape(backend_name: str, url: str, app: conveyor.App) -> Any:
    """What must not change: the schema, the functions, the keyspace."""
    if backend_name == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    if backend_name == "postgres":
        import psycopg

        from backends import POSTGRES_URL

        schema = url.rsplit("schema=", 1)[1]
        with psycopg.connect(POSTGRES_URL) as conn:
            columns = conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s ORDER BY 1, 2",
                [schema],
            ).fetchall()
            routines = conn.execute(
                "SELECT routine_name FROM information_schema.routines WHERE routine_schema = %s ORDER BY 1",
                [schema],
            ).fetchall()
            schemas = conn.execute("SELECT count(*) FROM pg_namespace").fetchone()
        return columns, routines, schemas
    if backend_name == "redis":
        import redis

        from backends import REDIS_URL

        prefix = url.rsplit("prefix=", 1)[1]
        client = redis.Redis.from_url(REDIS_URL)
        keys = sorted((k, client.type(k)) for k in client.scan_iter(match=f"{{{prefix}}}*", count=1000))
        client.close()
        return keys
    return app.stats()["counts"]


def test_bad_input_through_every_door(backend_name: str, backend_url: str, tmp_path: Path) -> None:
    app = conveyor.App(backend_url)
    app.declare("step", max_attempts=1)
    app.stats()
    before = shape(backend_name, backend_url, app)
    refused = {"api": 0, "http": 0, "cli": 0}

    # -- the Python API ---------------------------------------------------------------------
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(name=names)
    def api_names(name: str) -> None:
        for call in (
            lambda: app.enqueue(name),
            lambda: app.enqueue("step", queue=name) if not conveyor_name(name) else app.get(name),
            lambda: app.get(name),
            lambda: app.cancel(name),
            lambda: app.resubmit(name),
            lambda: app.delete(name),
            lambda: app.jobs(status=name),
            lambda: app.enqueue_many([{"task": name}]),
        ):
            with pytest.raises(TYPED):
                call()
            refused["api"] += 1

    api_names()
    for bad in (
        math.nan,
        math.inf,
        -math.inf,
        object(),
        b"bytes",
        {1, 2},
        nested(100_000),
        "x" * (LIMIT + 1),
    ):
        with pytest.raises((errors.InvalidPayload, errors.PayloadTooLarge)):
            app.enqueue("step", args=[bad])
        refused["api"] += 1

    # -- the HTTP API ---------------------------------------------------------------------------
    from starlette.testclient import TestClient

    from conveyor.server import create_app

    with TestClient(create_app(app, api_keys=["torture-key"])) as http:
        headers = {"x-api-key": "torture-key", "content-type": "application/json"}
        bodies = [
            b"\xff\xfe\x00{",
            b'{"task": "step", "args": [NaN]}',
            b'{"task": "step", "args": [Infinity]}',
            b"[" * 100_000 + b"]" * 100_000,
            b'{"task": "step"',
            b"null",
            b'{"task": 42}',
            json.dumps({"task": "step", "args": ["x" * (LIMIT + 1)]}).encode(),
            b'{"task": "step", "args": [' + b"[" * 10_000 + b"]" * 10_000 + b"]}",
        ]

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(name=names)
        def http_names(name: str) -> None:
            for method, path, body in (
                ("POST", "/api/jobs", json.dumps({"task": name})),
                (
                    "POST",
                    "/api/jobs",
                    json.dumps({"task": "step", "queue": name})
                    if not conveyor_name(name)
                    else json.dumps({"task": name + "?"}),
                ),
                ("GET", "/api/queue", None),
            ):
                params = {"status": name} if method == "GET" else None
                response = http.request(method, path, content=body, headers=headers, params=params)
                assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
                assert "error" in response.json()
                refused["http"] += 1
            quoted = quote(name, safe="")
            for path in (f"/api/jobs/{quoted}", f"/api/queue/{quoted}/retry"):
                response = http.request("GET" if "jobs" in path else "POST", path, headers=headers)
                assert 400 <= response.status_code < 500, (name, response.status_code)
                refused["http"] += 1

        http_names()
        for body in bodies:
            response = http.post("/api/jobs", content=body, headers=headers)
            assert response.status_code in (400, 413, 422), (body[:40], response.status_code, response.text)
            assert "error" in response.json()
            refused["http"] += 1

    # -- the CLI ---------------------------------------------------------------------------------
    runner = CliRunner()
    os.environ.setdefault("CONVEYOR_URL", backend_url)
    for argv in (
        ["enqueue", "torture.workload:app", "step", "--args", "[NaN]"],
        ["enqueue", "torture.workload:app", "step", "--args", "[1"],
        ["enqueue", "torture.workload:app", "'; DROP TABLE jobs; --"],
        ["enqueue", "torture.workload:app", "step", "--queue", "]]..redis.call('FLUSHALL')..[["],
        ["jobs", "show", "'; DROP TABLE jobs; --"],
        ["jobs", "list", "--queue", "a'b"],
        ["jobs", "cancel", "\x00"],
        ["jobs", "purge", "--status", "completed", "--older-than", "7x"],
    ):
        result = runner.invoke(cli, [*argv, "--url", backend_url])
        assert result.exit_code in (1, 2), (argv, result.exit_code, result.output)
        assert "Traceback" not in result.output, result.output
        refused["cli"] += 1

    assert shape(backend_name, backend_url, app) == before, "the schema or keyspace changed"
    assert sum(app.stats()["counts"].values()) == 0, app.stats()
    verdict = check(app, "bad input and injection", backend_name, [], None)
    verdict.notes["refused"] = refused
    verdict.assert_valid()
    app.close()


def conveyor_name(text: str) -> bool:
    """Is ``text`` a valid queue or task name (then it is not bad input for the name checks)?"""
    import re

    return re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", text) is not None
