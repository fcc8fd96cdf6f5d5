"""PostgreSQL's /metrics gauges on a large table: finished counts from statistics, the rest exact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import conveyor
from backends import POSTGRES_URL, fresh_url, require_or_skip
from conveyor.backends import pg_observe
from conveyor.backends.base import ClaimRequest, Outcome
from conveyor.backends.postgres import PostgresBackend


@pytest.fixture
def pg_app(tmp_path: Path) -> Iterator[conveyor.App]:
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path) as url:
        app = conveyor.App(url)
        yield app
        app.close()


def test_finished_counts_come_from_statistics_once_the_table_is_large(
    pg_app: conveyor.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    @pg_app.task(queue="mail")
    def send() -> None: ...

    for _ in range(3):
        pg_app.enqueue_many([{"task": "send"} for _ in range(100)])
    backend = pg_app.backend
    claimed = backend.claim(ClaimRequest(("mail",), 250, 30, "w"))
    now = time.time()
    done = [Outcome(c.id, c.lease_token, "completed", 1, "w", now, now, result="null") for c in claimed[:240]]
    failed = [Outcome(c.id, c.lease_token, "failed", 1, "w", now, now, error="E") for c in claimed[240:]]
    backend.finish_many(done + failed)
    exact = backend.queue_gauges()
    assert not exact.estimated and exact.queues["mail"].counts["completed"] == 240
    # As if the table were large: the finished counts come from the (queue, state) statistics.
    monkeypatch.setattr(pg_observe, "EXACT_COUNT_ROWS", 1)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'ANALYZE "{backend.schema}".jobs')  # type: ignore[attr-defined]
    estimated = backend.queue_gauges()
    assert estimated.estimated == {"completed", "cancelled"}
    counts = estimated.queues["mail"].counts
    assert counts["completed"] == 240, "ANALYZE sampled every row of a small table: exact frequencies"
    assert counts["failed"] == 10 and counts["pending"] == 50, "what a person acts on stays exact"
    assert estimated.queues["mail"].oldest_pending_age_s is not None


def test_throughput_reads_only_the_windows_rows_along_jobs_finished(pg_app: conveyor.App) -> None:
    backend = pg_app.backend
    assert isinstance(backend, PostgresBackend)
    backend.migrate()
    schema = sql.Identifier(backend.schema)
    insert = sql.SQL(
        "INSERT INTO {}.jobs (id, task, queue, state, payload, run_at, max_attempts, finished_at) "
        "SELECT %s || g, 't', %s, %s, '{{}}', now(), 1, now() - %s * interval '1 second' "
        "FROM generate_series(1, %s) g"
    ).format(schema)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(insert, ("old-", "mail", "completed", 2 * 86400, 20000))  # two days ago: outside
        conn.execute(insert, ("oldf-", "mail", "failed", 2 * 86400, 500))
        conn.execute(insert, ("new-", "mail", "completed", 0, 7))  # now: inside
        conn.execute(insert, ("newf-", "other", "failed", 0, 2))
        conn.execute(insert, ("gone-", "mail", "cancelled", 0, 3))  # cancelled: not counted
        conn.execute(sql.SQL("ANALYZE {}.jobs").format(schema))
    # The plan the pooled sessions use (generic), on the engine's own connection.
    with backend._conn() as conn:
        plan = conn.execute(
            b"EXPLAIN " + backend.queries["throughput"].encode(), {"minutes": 60, "queue": None}
        ).fetchall()
    text = "\n".join(row[0] for row in plan)
    assert "jobs_finished" in text and "Seq Scan on jobs" not in text, text
    window = backend.throughput(60)
    assert (window.completed, window.failed) == (7, 2)
    assert (backend.throughput(60, "mail").completed, backend.throughput(60, "mail").failed) == (7, 0)
    assert backend.throughput(1440).completed == 7, "two days ago is outside even a day's window"
