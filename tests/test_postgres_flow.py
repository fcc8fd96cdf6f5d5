"""Flow control on PostgreSQL beyond the conformance suite: the SQL function's group_key, the
keyed enqueue path's groups, migration from the previous schema, and a bounded claim walk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor
from backends import POSTGRES_URL, fresh_url, require_or_skip
from conveyor.backends.base import ClaimRequest

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402

from conveyor.backends.postgres import PostgresBackend  # noqa: E402


@pytest.fixture
def app(tmp_path: Path) -> Iterator[conveyor.App]:
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path) as url:
        application = conveyor.App(url)
        application.declare("work")
        application.backend.migrate()
        yield application
        application.close()


def schema_of(app: conveyor.App) -> sql.Identifier:
    assert isinstance(app.backend, PostgresBackend)
    return sql.Identifier(app.backend.schema)


def test_the_sql_function_takes_a_group_key_and_checks_it(app: conveyor.App) -> None:
    schema = schema_of(app)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        job_id = conn.execute(
            sql.SQL("SELECT {}.enqueue('work', group_key => 'tenant-7')").format(schema)
        ).fetchone()[0]
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="group_key"):
            conn.execute(sql.SQL("SELECT {}.enqueue('work', group_key => repeat('x', 201))").format(schema))
    assert app.get(job_id).group == "tenant-7"
    app.configure_queue("default", group_concurrency=1)
    (claimed,) = app.backend.claim(ClaimRequest(("default",), 5, 30, "w"))
    assert claimed.group == "tenant-7"


def test_keyed_enqueues_carry_their_group_and_rank(app: conveyor.App) -> None:
    first = app.enqueue("work", key="k1", group="a")
    again = app.enqueue("work", key="k1", group="a")
    other = app.enqueue("work", key="k2", group="a")
    assert again.id == first.id
    assert [first.refresh().group, other.refresh().group] == ["a", "a"]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        ranks = conn.execute(
            sql.SQL("SELECT fair_rank FROM {}.jobs ORDER BY id").format(schema_of(app))
        ).fetchall()
    assert [r[0] for r in ranks] == [1, 2], "the n-th job of a group has rank n"


def test_the_flow_claim_reads_a_bounded_slice_of_a_big_backlog(app: conveyor.App) -> None:
    app.configure_queue("default", group_concurrency=1)
    app.enqueue_many([{"task": "work", "group": f"g{i % 2000}"} for i in range(6000)])
    schema = schema_of(app)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}.jobs").format(schema))
        plan = conn.execute(
            sql.SQL(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                "SELECT j.id FROM {}.jobs j WHERE j.queue = 'default' AND j.state IN ('pending', 'retry') "
                "AND j.run_at <= now() ORDER BY j.priority DESC, j.fair_rank, j.run_at, j.id LIMIT 80 "
                "FOR UPDATE SKIP LOCKED"
            ).format(schema)
        ).fetchall()
    text = "\n".join(r[0] for r in plan)
    assert "jobs_fair" in text and "Sort" not in text and "Seq Scan" not in text, text
    claimed = app.backend.claim(ClaimRequest(("default",), 20, 30, "w"))
    assert len({job.group for job in claimed}) == 20


def test_migrating_a_schema_from_before_flow_control_keeps_its_jobs(tmp_path: Path) -> None:
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path) as url:
        old = PostgresBackend(url)
        old.migrate(to_version=4)  # the action trail, the last migration before flow control
        old.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("SELECT {}.enqueue('work')").format(sql.Identifier(PostgresBackend(url).schema))
            )
        app = conveyor.App(url)
        app.declare("work")
        app.backend.migrate()
        (job,) = app.jobs()
        assert job.group is None
        app.configure_queue("default", concurrency=1)
        assert len(app.backend.claim(ClaimRequest(("default",), 5, 30, "w"))) == 1
        app.close()
