"""Storage engines behind the one :class:`~conveyor.backends.base.Backend` protocol."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import BadURL
from .base import Backend

SCHEMES = ("sqlite", "postgresql", "postgres", "redis", "rediss", "valkey")


def open_backend(url: str, *, key_retention: float = 86400.0) -> Backend:
    """Open the backend a URL names; drivers for networked engines are imported lazily."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from .sqlite import SQLiteBackend

        return SQLiteBackend(url, key_retention=key_retention)
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresBackend
        except ImportError as exc:
            raise BadURL(
                f"{url!r} needs the postgres extra: pip install 'conveyor[postgres]' ({exc})"
            ) from None
        backend: Backend = PostgresBackend(url, key_retention=key_retention)
        return backend
    if scheme in ("redis", "rediss", "valkey"):
        try:
            from .redis import RedisBackend
        except ImportError as exc:
            raise BadURL(f"{url!r} needs the redis extra: pip install 'conveyor[redis]' ({exc})") from None
        backend = RedisBackend(url, key_retention=key_retention)
        return backend
    raise BadURL(
        f"unknown backend URL {url!r}: expected sqlite:///file.db, postgresql://user@host/db "
        "or redis://host:6379/0"
    )


__all__ = ["SCHEMES", "Backend", "open_backend"]
