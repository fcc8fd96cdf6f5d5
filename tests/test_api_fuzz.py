"""Fuzz the HTTP API from its own OpenAPI document (schemathesis): no input may cause a 5xx.

A short run for CI: at most 50 examples per operation against a real server on
SQLite. Responses must also keep the documented status codes, content types and
schemas, so the document stays true to the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import conveyor
from conveyor.server import create_app
from conveyor.server.routes import openapi_document
from test_http_api import serving

KEY = "fuzz-key-7d3f0b9a2c5e4f61"
MAX_EXAMPLES = int(os.environ.get("CONVEYOR_FUZZ_EXAMPLES", "50"))
#: The tasks of the fuzzed app: the served document lists them, so the fuzzer can enqueue them.
TASKS = ("conveyor.http", "fail", "noop")


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server on a fresh SQLite store with a couple of tasks and jobs in every state."""
    app = conveyor.App(f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'fuzz.db'}")

    @app.task(max_attempts=1)
    def noop(*args: object, **kwargs: object) -> None:
        """Accepts anything the fuzzer sends."""

    @app.task(max_attempts=1)
    def fail() -> None:
        raise conveyor.Permanent("always")

    noop.enqueue(1, 2)
    fail.enqueue()
    conveyor.Worker(app, install_signal_handlers=False).process_batch(10)
    noop.options(delay=3600).enqueue()
    assert set(app.tasks) | {"conveyor.http"} == set(TASKS)
    with serving(create_app(app, [KEY])) as url:
        yield url
    app.close()


# Loaded eagerly from the same document the server serves at /openapi.json (a test
# checks the two agree); schemathesis' lazy fixture loader needs pytest internals.
schema = schemathesis.openapi.from_dict(openapi_document(TASKS))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_causes_a_server_error(case: schemathesis.Case, fuzz_url: str) -> None:
    """Every operation, with generated valid and invalid input: documented answers only, never a 5xx."""
    case.call_and_validate(
        base_url=fuzz_url,
        headers={"x-api-key": KEY},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=30,
    )


def test_the_served_document_is_the_fuzzed_one(fuzz_url: str) -> None:
    import httpx

    assert httpx.get(f"{fuzz_url}/openapi.json").json() == openapi_document(TASKS)
