"""PostgreSQL's finish notices: sent only while a finish listener holds the schema's lock,
one per write with the ids, '*' past NOTIFY's payload limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import conveyor
from backends import POSTGRES_URL, fresh_url, require_or_skip
from conveyor.backends.base import ClaimRequest, Outcome
from conveyor.backends.postgres import PostgresBackend
from conveyor.testing.helpers import wait_for


@pytest.fixture
def app(tmp_path: Path) -> Iterator[conveyor.App]:
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path) as url:
        application = conveyor.App(url)
        application.declare("work")
        yield application
        application.close()


@pytest.fixture
def notices(app: conveyor.App) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A bare session LISTENing on the finish channel (holding no lock itself)."""
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(backend.options.finished_channel)))
        yield conn


def finish(app: conveyor.App, n: int) -> list[str]:
    app.enqueue_many([{"task": "work"} for _ in range(n)])
    claimed = app.backend.claim(ClaimRequest(("default",), n, 30.0, "test"))
    now = time.time()
    app.backend.finish_many([Outcome(c.id, c.lease_token, "completed", 1, "test", now, now) for c in claimed])
    return sorted(c.id for c in claimed)


def received(conn: psycopg.Connection[tuple[object, ...]], timeout: float) -> list[str]:
    return [note.payload for note in conn.notifies(timeout=timeout)]


def test_no_notice_while_nobody_watches(app: conveyor.App, notices: psycopg.Connection) -> None:
    finish(app, 3)
    assert received(notices, timeout=0.5) == []


def test_one_notice_per_write_with_the_ids_while_a_watch_is_live(
    app: conveyor.App, notices: psycopg.Connection
) -> None:
    with app.backend.watch_finishes(["unrelated"], lambda: None) as watch:
        wait_for(lambda: watch.live)
        ids = finish(app, 5)
        [payload] = received(notices, timeout=2.0)
        assert sorted(payload.split(",")) == ids
        finish(app, 300)  # 300 ids of 33 bytes: past the 8000-byte payload limit
        assert received(notices, timeout=2.0) == ["*"]
