"""PostgreSQL schema management: versioned migrations, concurrent migrate, refusing a mismatch,
and replaying every migration giving exactly the schema a fresh install has."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor
from backends import POSTGRES_URL, fresh_url, require_or_skip
from conveyor.errors import SchemaMismatch

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402

from conveyor.backends.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresBackend  # noqa: E402

SRC = str(Path(__file__).resolve().parent.parent / "src")

#: Everything a schema defines, as comparable text with the schema's own name taken out.
CATALOG = """
SELECT 'column ' || c.relname || '.' || a.attname || ' #' || a.attnum || ' '
       || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || coalesce(' collate ' || co.collname, '') || ' identity:' || a.attidentity::text
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'S', 'v') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'constraint ' || t.relname || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'function ' || p.proname || '(' || pg_get_function_arguments(p.oid) || ') '
       || pg_get_function_result(p.oid) || ' '
       || md5(replace(p.prosrc, n.nspname, '<schema>'))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'table ' || c.relname || ' ' || c.relkind::text || ' '
       || coalesce(array_to_string(c.reloptions, ','), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
"""


def catalog(schema: str) -> list[str]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(CATALOG, {"schema": schema}).fetchall()
    quoted = sql.Identifier(schema).as_string(None)
    return sorted(row[0].replace(quoted + ".", "<schema>.").replace(schema, "<schema>") for row in rows)


def versions(schema: str) -> list[int]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        query = sql.SQL("SELECT version FROM {}.schema_version ORDER BY version")
        query = query.format(sql.Identifier(schema))  # type: ignore[assignment]
        return [row[0] for row in conn.execute(query).fetchall()]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path) as value:
        yield value


@pytest.fixture
def other_url(tmp_path: Path) -> Iterator[str]:
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path / "other") as value:
        yield value


def test_migrate_is_idempotent_and_records_each_version(url: str) -> None:
    b = PostgresBackend(url)
    try:
        assert b.schema_version() == 0
        b.migrate()
        b.migrate()
        assert b.schema_version() == SCHEMA_VERSION
        assert versions(b.schema) == sorted(MIGRATIONS)
    finally:
        b.close()


def test_an_empty_schema_is_installed_on_first_use(url: str) -> None:
    app = conveyor.App(url)
    app.declare("t")
    try:
        app.enqueue("t")
        assert app.stats()["counts"]["pending"] == 1
        assert versions(app.backend.schema) == sorted(MIGRATIONS)  # type: ignore[attr-defined]
    finally:
        app.close()


def test_concurrent_migrate_from_three_processes_is_safe(url: str, tmp_path: Path) -> None:
    start_at = time.time() + 1.5  # every process is connected and ready before this instant
    script = (
        "import sys, time\n"
        "from conveyor.backends.postgres import PostgresBackend\n"
        "b = PostgresBackend(sys.argv[1])\n"
        "b.now()  # connected\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "b.migrate()\n"
        "print(b.schema_version())\n"
        "b.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == str(SCHEMA_VERSION)
    schema = PostgresBackend(url).schema
    assert versions(schema) == sorted(MIGRATIONS), "each migration applied exactly once"


def test_an_older_schema_is_refused_naming_the_command_that_fixes_it(url: str) -> None:
    old = PostgresBackend(url)
    old.migrate(to_version=SCHEMA_VERSION - 1)
    old.close()
    app = conveyor.App(url)
    app.declare("t")
    try:
        with pytest.raises(SchemaMismatch, match="conveyor migrate") as info:
            app.enqueue("t")
        assert f"version {SCHEMA_VERSION - 1}" in str(info.value) and "older" in str(info.value)
        schema = app.backend.schema  # type: ignore[attr-defined]
        assert versions(schema) == list(range(1, SCHEMA_VERSION)), "never upgraded behind your back"
        app.backend.migrate()  # what `conveyor migrate APP` runs
        app.enqueue("t")
        assert app.stats()["counts"]["pending"] == 1
    finally:
        app.close()


def test_a_newer_schema_is_refused(url: str) -> None:
    b = PostgresBackend(url)
    b.migrate()
    b.close()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(sql.Identifier(b.schema)),
            [SCHEMA_VERSION + 1],
        )
    newer = PostgresBackend(url)
    try:
        with pytest.raises(SchemaMismatch, match="newer") as info:
            newer.stats()
        assert "upgrade conveyor" in str(info.value) and "conveyor migrate" in str(info.value)
        with pytest.raises(SchemaMismatch, match="newer"):
            newer.migrate()
    finally:
        newer.close()


def test_replaying_every_migration_gives_the_current_schema(url: str, other_url: str) -> None:
    fresh = PostgresBackend(url)
    stepped = PostgresBackend(other_url)
    try:
        fresh.migrate()
        for version in sorted(MIGRATIONS):  # one release at a time, with data in between
            stepped.migrate(to_version=version)
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.jobs (id, task, queue, payload, run_at, max_attempts) "
                        "VALUES (%s, 't', 'default', '{{}}', now(), 3)"
                    ).format(sql.Identifier(stepped.schema)),
                    [f"{version:032x}"],
                )
        assert catalog(fresh.schema) == catalog(stepped.schema)
        assert len(catalog(fresh.schema)) > 40, "the comparison sees the whole schema"
    finally:
        fresh.close()
        stepped.close()


def test_every_object_lives_in_the_configured_schema(url: str) -> None:
    b = PostgresBackend(url)
    try:
        b.migrate()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND relkind = 'r' ORDER BY relname",
                [b.schema],
            ).fetchall()
            functions = conn.execute(
                "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = %s ORDER BY proname",
                [b.schema],
            ).fetchall()
        assert [t[0] for t in tables] == [
            "action_jobs", "actions", "alerts", "attempts", "groups", "jobs", "keys", "queues",
            "schedules", "schema_version", "starts",
        ]  # fmt: skip
        assert [f[0] for f in functions] == [
            "claim_flow", "enqueue", "enqueue_job", "enqueue_jobs", "group_rank", "set_group",
        ]  # fmt: skip
    finally:
        b.close()
