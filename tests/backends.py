"""Test backends: where each engine lives, whether it is up, and a fresh isolated URL for it.

A backend that is not reachable is skipped with a loud reason, unless it is named
in ``CONVEYOR_REQUIRE_BACKENDS`` (comma separated), where a skip becomes a failure.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ALL = ("sqlite", "postgres", "redis")


def required() -> set[str]:
    """Backends that must run here (a skip is a failure)."""
    raw = os.environ.get("CONVEYOR_REQUIRE_BACKENDS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 1.0):
            return True
    except OSError:
        return False


def _driver_missing(name: str) -> str | None:
    try:
        if name == "postgres":
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        elif name == "redis":
            import redis  # noqa: F401
    except ImportError as exc:
        return f"driver not installed ({exc})"
    try:
        if name == "postgres":
            import conveyor.backends.postgres
        elif name == "redis":
            import conveyor.backends.redis  # noqa: F401
    except ImportError as exc:
        return f"backend module not importable ({exc})"
    return None


def unavailable(name: str) -> str | None:
    """Why ``name`` cannot run here, or None."""
    if name == "sqlite":
        return None
    missing = _driver_missing(name)
    if missing:
        return missing
    if name == "postgres" and not _reachable(POSTGRES_URL, 5432):
        return f"PostgreSQL not reachable at {POSTGRES_URL} (set CONVEYOR_TEST_POSTGRES_URL)"
    if name == "redis" and not _reachable(REDIS_URL, 6379):
        return f"Redis not reachable at {REDIS_URL} (set CONVEYOR_TEST_REDIS_URL)"
    return None


def require_or_skip(name: str) -> None:
    """Skip loudly, or fail when the backend is required here."""
    reason = unavailable(name)
    if reason is None:
        return
    message = f"backend {name} unavailable: {reason}"
    if name in required():
        pytest.fail(f"{message}, and CONVEYOR_REQUIRE_BACKENDS requires it", pytrace=False)
    pytest.skip(message)


def drop_redis_prefix(client: Any, prefix: str) -> None:
    """Delete every key of a Conveyor namespace (its keys share the hash tag ``{prefix}``)."""
    keys = list(client.scan_iter(match=f"{{{prefix}}}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


@contextmanager
def fresh_url(name: str, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty, isolated store for one test; cleaned up afterwards."""
    tag = "t" + secrets.token_hex(5)
    if name == "sqlite":
        yield f"sqlite:///{tmp_path / 'conveyor.db'}"
    elif name == "postgres":
        url = _with_query(POSTGRES_URL, f"schema={tag}")
        try:
            yield url
        finally:
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')  # tag is our own hex
    elif name == "redis":
        url = _with_query(REDIS_URL, f"prefix={tag}")
        try:
            yield url
        finally:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            drop_redis_prefix(client, tag)
            client.close()
    else:
        raise ValueError(name)
