"""Test backends: one provider per engine, in one table.

A provider says whether its engine can run here, hands out a URL to a fresh,
isolated store for one test and cleans it up afterwards, and says whether other
processes can open that URL (tests that spawn worker processes need that).

A backend that is not reachable is skipped with a loud reason, unless it is named
in ``CONVEYOR_REQUIRE_BACKENDS`` (comma separated), where a skip becomes a failure.
"""

from __future__ import annotations

import importlib
import os
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _tag() -> str:
    """A fresh name for one test's store: a schema, a key prefix, a memory store."""
    return "t" + secrets.token_hex(5)


class Provider(ABC):
    """One engine as the tests see it. Subclasses fill in the engine's specifics."""

    name = ""
    #: Can another process open the URL and see the same jobs (worker subprocesses)?
    shared_across_processes = True
    #: Modules that must import: the driver, then Conveyor's backend module.
    modules: tuple[str, ...] = ()
    #: The server the engine needs, as (URL, default port); None: no server.
    server: tuple[str, int] | None = None

    def unavailable(self) -> str | None:
        """Why this engine cannot run here, or None."""
        for module in self.modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                return f"{module} not importable ({exc})"
        if self.server is not None:
            url, port = self.server
            parts = urlsplit(url)
            try:
                with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or port), 1.0):
                    pass
            except OSError:
                return f"no server at {url} (set CONVEYOR_TEST_{self.name.upper()}_URL)"
        return None

    @abstractmethod
    def fresh_url(self, tmp_path: Path) -> AbstractContextManager[str]:
        """A URL to an empty, isolated store for one test; cleaned up afterwards."""


class SQLiteProvider(Provider):
    """A database file in the test's temporary directory."""

    name = "sqlite"

    @contextmanager
    def fresh_url(self, tmp_path: Path) -> Iterator[str]:
        yield f"sqlite:///{tmp_path / 'conveyor.db'}"


class PostgresProvider(Provider):
    """A schema of its own in the test database, dropped afterwards."""

    name = "postgres"
    modules = ("psycopg", "psycopg_pool", "conveyor.backends.postgres")
    server = (POSTGRES_URL, 5432)

    @contextmanager
    def fresh_url(self, tmp_path: Path) -> Iterator[str]:
        tag = _tag()
        try:
            yield _with_query(POSTGRES_URL, f"schema={tag}")
        finally:
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')  # tag is our own hex


class RedisProvider(Provider):
    """A key prefix of its own, deleted afterwards."""

    name = "redis"
    modules = ("redis", "conveyor.backends.redis")
    server = (REDIS_URL, 6379)

    @contextmanager
    def fresh_url(self, tmp_path: Path) -> Iterator[str]:
        tag = _tag()
        try:
            yield _with_query(REDIS_URL, f"prefix={tag}")
        finally:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            drop_redis_prefix(client, tag)
            client.close()


class MemoryProvider(Provider):
    """A store of its own name in this process, dropped afterwards; no other process sees it."""

    name = "memory"
    shared_across_processes = False

    @contextmanager
    def fresh_url(self, tmp_path: Path) -> Iterator[str]:
        from conveyor.backends.memory import drop_store

        tag = _tag()
        try:
            yield f"memory://{tag}"
        finally:
            drop_store(tag)


PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (SQLiteProvider(), PostgresProvider(), RedisProvider(), MemoryProvider())
}
#: Every engine, for in-process tests.
ALL = tuple(PROVIDERS)
#: The engines whose URL other processes can open: for tests that spawn workers.
SHARED_ACROSS_PROCESSES = tuple(name for name, p in PROVIDERS.items() if p.shared_across_processes)


def required() -> set[str]:
    """Backends that must run here (a skip is a failure)."""
    raw = os.environ.get("CONVEYOR_REQUIRE_BACKENDS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def unavailable(name: str) -> str | None:
    """Why ``name`` cannot run here, or None."""
    return PROVIDERS[name].unavailable()


def require_or_skip(name: str) -> None:
    """Skip loudly, or fail when the backend is required here."""
    reason = unavailable(name)
    if reason is None:
        return
    message = f"backend {name} unavailable: {reason}"
    if name in required():
        pytest.fail(f"{message}, and CONVEYOR_REQUIRE_BACKENDS requires it", pytrace=False)
    pytest.skip(message)


def fresh_url(name: str, tmp_path: Path) -> AbstractContextManager[str]:
    """A context manager giving a URL to an empty, isolated store of ``name`` for one test."""
    return PROVIDERS[name].fresh_url(tmp_path)


def drop_redis_prefix(client: Any, prefix: str) -> None:
    """Delete every key of a Conveyor namespace (its keys share the hash tag ``{prefix}``)."""
    keys = list(client.scan_iter(match=f"{{{prefix}}}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
