"""The benchmarks' stores, and how every run removes them.

A benchmark keeps its jobs in a namespace of its own: a Redis key prefix (every key of
it carries the hash tag ``{prefix}``), a PostgreSQL schema or a SQLite file. Each run
removes its namespace when it ends, also when it fails, so no benchmark leaves keys
behind on a shared server (leftover namespaces slow a shared Redis down for everyone).
The removal is the conformance suite's (``conveyor.testing.conformance.stores``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from conveyor.testing.conformance.stores import fresh_store, isolation_for


def scratch_store(base_url: str) -> AbstractContextManager[str]:
    """A URL to an empty store of its own on ``base_url``'s backend, removed when the block ends."""
    return fresh_store(base_url)


def drop_store(url: str) -> None:
    """Remove the store ``url`` names: its Redis keys, its PostgreSQL schema or its SQLite files."""
    isolation_for(url).drop(url)


def namespace_url(engine: str, tag: str, redis_url: str, pg_dsn: str, sqlite_dir: Path) -> str:
    """The Conveyor URL of a benchmark session's namespace ``tag`` on ``engine``."""
    if engine == "sqlite":
        return f"sqlite:///{sqlite_dir / 'conveyor.db'}"
    if engine == "postgres":
        return f"{pg_dsn}?schema={tag}"
    return f"{redis_url}?prefix={tag}"
