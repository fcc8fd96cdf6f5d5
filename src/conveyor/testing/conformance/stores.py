"""A fresh, empty store for each conformance test, derived from the one URL the run was given.

The suite counts jobs and reads statistics, so each test needs a store of its own.
A URL holding the placeholder ``{namespace}`` gets a new name there for every test
(the way to run the suite on a backend Conveyor does not ship: put the placeholder
where that backend takes a file, schema or key prefix). Otherwise the engines that
ship with Conveyor are isolated by their own URL conventions, and the namespace is
removed after the test:

=================  ==========================================  ==========================
scheme             a test's store                              removed after the test
=================  ==========================================  ==========================
``sqlite``         ``x-<tag>.db`` beside the file named        the file and its WAL files
``postgresql``     ``?schema=<schema>_<tag>``                  ``DROP SCHEMA ... CASCADE``
``redis``          ``?prefix=<prefix>_<tag>``                  the keys of that prefix
``memory``         ``memory://<name>-<tag>``                   (ends with the process)
=================  ==========================================  ==========================
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import BadURL

#: Where a URL asks for each test's own namespace.
PLACEHOLDER = "{namespace}"


@dataclass(frozen=True, slots=True)
class Isolation:
    """How one engine gives a test its own store, and how that store is removed."""

    url_for: Callable[[str, str], str]
    drop: Callable[[str], None]


def _with_param(url: str, name: str, default: str, tag: str) -> str:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params[name] = f"{params.get(name, default)[:40]}_{tag}"
    return urlunsplit(parts._replace(query=urlencode(params)))


def _sqlite_url(url: str, tag: str) -> str:
    parts = urlsplit(url)
    path = Path(parts.path.removeprefix("/") or "conveyor.db")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}:///{path.with_name(f'{path.stem}-{tag}{path.suffix}')}{query}"


def _sqlite_drop(url: str) -> None:
    path = urlsplit(url).path.removeprefix("/")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(path + suffix).unlink(missing_ok=True)


def _postgres_drop(url: str) -> None:
    import psycopg
    from psycopg import sql

    from ...backends.pg_url import parse_postgres_url

    options = parse_postgres_url(url)
    with psycopg.connect(options.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(options.schema)))


def _redis_drop(url: str) -> None:
    import redis

    from ...backends.redis_support import parse_redis_url

    options = parse_redis_url(url)
    client: Any = redis.Redis.from_url(options.client_url)
    try:
        # Every key of a namespace carries the hash tag {prefix}.
        keys = list(client.scan_iter(match=f"{{{options.prefix}}}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def _keep(url: str) -> None:
    """Nothing to remove (or nothing Conveyor knows how to remove)."""


_POSTGRES = Isolation(lambda url, tag: _with_param(url, "schema", "conveyor", tag), _postgres_drop)
_REDIS = Isolation(lambda url, tag: _with_param(url, "prefix", "conveyor", tag), _redis_drop)

#: Scheme -> isolation, for the engines that ship with Conveyor.
ISOLATIONS: dict[str, Isolation] = {
    "sqlite": Isolation(_sqlite_url, _sqlite_drop),
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    "redis": _REDIS,
    "rediss": _REDIS,
    "valkey": _REDIS,
    "memory": Isolation(lambda url, tag: f"{url.rstrip('/')}-{tag}", _keep),
}


def isolation_for(base_url: str) -> Isolation:
    """How to give each test its own store on ``base_url``; BadURL when there is no way."""
    if PLACEHOLDER in base_url:
        return Isolation(lambda url, tag: url.replace(PLACEHOLDER, tag), _keep)
    scheme = urlsplit(base_url).scheme
    isolation = ISOLATIONS.get(scheme)
    if isolation is None:
        raise BadURL(
            f"cannot give each test its own store on {base_url!r}: scheme {scheme!r} is not one of "
            f"{', '.join(sorted(ISOLATIONS))}; put {PLACEHOLDER} in the URL where its backend takes a "
            "database, schema or key prefix"
        )
    return isolation


@contextmanager
def fresh_store(base_url: str) -> Iterator[str]:
    """A URL to an empty store of its own on ``base_url``'s backend, removed afterwards."""
    isolation = isolation_for(base_url)
    url = isolation.url_for(base_url, "t" + secrets.token_hex(5))
    try:
        yield url
    finally:
        try:
            isolation.drop(url)
        except Exception as exc:  # noqa: BLE001 - a store left behind is litter, not a test failure
            warnings.warn(f"could not remove the test store {url!r}: {exc}", stacklevel=2)
