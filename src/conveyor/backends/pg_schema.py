"""PostgreSQL's SQL text: the named blocks of postgres.sql, the migrations, and the version check.

The queries are formatted once per backend for its schema and NOTIFY channel
(psycopg.sql Identifier / Literal from a validated name); values always travel
as bound parameters. ``migrate`` runs the migrations a schema lacks, in one
transaction under an advisory lock.
"""

from __future__ import annotations

from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql

from ..errors import SchemaMismatch
from . import sqlfile
from .base import JobQuery

SQL = sqlfile.load("postgres.sql")
#: Migration blocks by version; a schema records each one it has applied.
MIGRATIONS: dict[int, str] = {
    int(name.removeprefix("migration_")): block
    for name, block in SQL.items()
    if name.startswith("migration_")
}
SCHEMA_VERSION = max(MIGRATIONS)
#: Blocks with a ``{filters}`` placeholder, completed per query by :meth:`Queries.filtered`.
_FILTERED = ("list_jobs", "count_jobs", "resubmit_many", "delete_many")
#: Blocks spliced into others by name (``{job_columns}``...), formatted for the schema first.
_FRAGMENTS = ("job_columns", "attempt_columns", "action_columns", "waiting_levels")
_FILTER_FIELDS = ("status", "queue", "task", "created_after", "created_before", "error", "group")


def literal(text: str) -> LiteralString:
    """Our own SQL text (from postgres.sql, formatted with psycopg.sql) as a LiteralString.

    The one place where str becomes LiteralString; the detour through object keeps mypy,
    which does not tell the two apart, from calling the cast redundant.
    """
    return cast("LiteralString", cast(object, text))


class Queries:
    """The named blocks of postgres.sql, formatted once for one schema and its channels."""

    def __init__(self, schema: str, channel: str, finished_channel: str) -> None:
        self._args: dict[str, sql.Composable] = {
            "schema": sql.Identifier(schema),
            "channel": sql.Literal(channel),
            "finished_channel": sql.Literal(finished_channel),
        }
        for name in _FRAGMENTS:
            self._args[name] = sql.SQL(literal(SQL[name])).format(**self._args)
        self._rendered: dict[str, LiteralString] = {}
        for name, block in SQL.items():
            if name in _FILTERED or name in _FRAGMENTS or name.startswith("filter_"):
                continue
            self._rendered[name] = literal(sql.SQL(literal(block)).format(**self._args).as_string(None))

    def __getitem__(self, name: str) -> LiteralString:
        return self._rendered[name]

    def migration(self, version: int) -> LiteralString:
        """The DDL of one migration."""
        return self[f"migration_{version:03d}"]

    def filtered(self, name: str, query: JobQuery) -> sql.Composed:
        """A listing query with one static condition per filter that ``query`` sets."""
        fields = [f for f in _FILTER_FIELDS if getattr(query, f) is not None]
        conditions = [sql.SQL(literal(SQL[f"filter_{field}"])) for field in fields]
        where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("TRUE")
        return sql.SQL(literal(SQL[name])).format(filters=where, **self._args)


def refuse_mismatch(schema: str, version: int) -> None:
    """Raise SchemaMismatch unless ``version`` is the one this Conveyor speaks."""
    if version < SCHEMA_VERSION:
        raise SchemaMismatch(
            f"PostgreSQL schema {schema!r} is at version {version}, older than this Conveyor "
            f"needs ({SCHEMA_VERSION}): run `conveyor migrate APP` to upgrade it"
        )
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"PostgreSQL schema {schema!r} is at version {version}, newer than this Conveyor "
            f"knows ({SCHEMA_VERSION}): upgrade conveyor on this machine (pip install -U conveyor); "
            "`conveyor migrate` never downgrades a schema"
        )


def installed_version(conn: psycopg.Connection[Any], queries: Queries, schema: str) -> int:
    """The version recorded in the schema (0 when nothing is installed)."""
    if not first(conn.execute(queries["version_table_exists"], {"schema": schema}).fetchone()):
        return 0
    return int(first(conn.execute(queries["schema_version"]).fetchone()))


def migrate(conn: psycopg.Connection[Any], queries: Queries, schema: str, target: int) -> None:
    """Apply the migrations up to ``target`` that the schema lacks, in one transaction.

    An advisory lock on the schema name queues concurrent callers, so the later ones
    find nothing left to do.
    """
    if target not in MIGRATIONS:
        raise ValueError(f"to_version must be one of {sorted(MIGRATIONS)}, got {target!r}")
    q = queries
    with conn.transaction():
        # Unprepared: DDL and one-off statements, and a migration is several statements.
        conn.execute(q["migrate_lock"], {"schema": schema}, prepare=False)
        if not first(conn.execute(q["schema_exists"], {"schema": schema}, prepare=False).fetchone()):
            conn.execute(q["create_schema"], prepare=False)
        conn.execute(q["version_table"], prepare=False)
        current = int(first(conn.execute(q["schema_version"], prepare=False).fetchone()))
        if current > SCHEMA_VERSION:
            refuse_mismatch(schema, current)
        for version in range(current + 1, target + 1):
            conn.execute(q.migration(version), prepare=False)
            conn.execute(q["record_version"], {"version": version}, prepare=False)


def first(row: tuple[Any, ...] | None) -> Any:
    """The first column of a one-row result."""
    if row is None:
        raise RuntimeError("query returned no row")
    return row[0]
