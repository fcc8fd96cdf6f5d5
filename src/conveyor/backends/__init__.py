"""Storage engines behind the one :class:`~conveyor.backends.base.Backend` protocol.

Every engine is registered in :data:`REGISTRY`: the URL schemes it answers, the
module and class that implement it, and the pip extra its driver comes with.
Modules are imported on first use, so an engine's driver is needed only when a
URL names it. Adding an engine is one row here (see docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from ..errors import BadURL
from .base import Backend

if TYPE_CHECKING:  # the async side (and asyncio) is imported by the first async caller
    from .aio import AsyncBackend


@dataclass(frozen=True, slots=True)
class BackendEntry:
    """One registered engine: which URL schemes open it, where its class lives, what it needs."""

    name: str
    schemes: tuple[str, ...]
    #: Module (relative to this package, or absolute) and class implementing Backend.
    module: str
    class_name: str
    #: An example URL, for messages.
    example: str
    #: The pip extra that installs the engine's driver (None: nothing beyond Conveyor).
    extra: str | None = None
    #: Module and class of its native AsyncBackend, built from the sync backend (None: threads).
    async_module: str | None = None
    async_class_name: str | None = None

    @property
    def install_hint(self) -> str:
        """What to run when the driver is missing."""
        return f"pip install 'conveyor[{self.extra}]'" if self.extra else "reinstall conveyor"


REGISTRY: tuple[BackendEntry, ...] = (
    BackendEntry("sqlite", ("sqlite",), ".sqlite", "SQLiteBackend", "sqlite:///file.db"),
    BackendEntry(
        "postgres",
        ("postgresql", "postgres"),
        ".postgres",
        "PostgresBackend",
        "postgresql://user@host/db",
        extra="postgres",
        async_module=".pg_async",
        async_class_name="AsyncPostgresBackend",
    ),
    BackendEntry(
        "redis",
        ("redis", "rediss", "valkey"),
        ".redis",
        "RedisBackend",
        "redis://host:6379/0",
        extra="redis",
        async_module=".redis_async",
        async_class_name="AsyncRedisBackend",
    ),
    BackendEntry("memory", ("memory",), ".memory", "MemoryBackend", "memory://NAME"),
)

#: Every URL scheme some registered engine answers.
SCHEMES: tuple[str, ...] = tuple(scheme for entry in REGISTRY for scheme in entry.schemes)


def entry_for(url: str) -> BackendEntry:
    """The registered engine a URL names, or BadURL listing the known schemes."""
    scheme = urlsplit(url).scheme
    for entry in REGISTRY:
        if scheme in entry.schemes:
            return entry
    known = ", ".join(entry.example for entry in REGISTRY)
    raise BadURL(f"unknown backend URL {url!r} (scheme {scheme!r}): expected one of {known}")


def open_backend(url: str, *, key_retention: float = 86400.0) -> Backend:
    """Open the backend a URL names; an engine's module (and driver) is imported on first use."""
    entry = entry_for(url)
    try:
        module = import_module(entry.module, __name__)
    except ImportError as exc:
        raise BadURL(f"{url!r} needs the {entry.name} driver: {entry.install_hint} ({exc})") from None
    factory = getattr(module, entry.class_name)
    return cast(Backend, factory(url, key_retention=key_retention))


def open_async_backend(backend: Backend) -> AsyncBackend:
    """The async side of an open backend: its engine's native one, else the thread hand-off."""
    entry = entry_for(backend.url)
    if entry.async_module is None or entry.async_class_name is None:
        from .aio import ThreadedAsyncBackend

        return ThreadedAsyncBackend(backend)
    factory = getattr(import_module(entry.async_module, __name__), entry.async_class_name)
    return cast("AsyncBackend", factory(backend))


def __getattr__(name: str) -> Any:
    """``AsyncBackend``, from the async module on first use (it imports asyncio)."""
    if name == "AsyncBackend":
        from . import aio

        return aio.AsyncBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "REGISTRY",
    "SCHEMES",
    "AsyncBackend",
    "Backend",
    "BackendEntry",
    "entry_for",
    "open_async_backend",
    "open_backend",
]
