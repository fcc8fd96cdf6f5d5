"""``app.asgi()``: the HTTP API and dashboard as one ASGI app to mount in a Starlette or FastAPI app.

Starlette (and FastAPI) do not send lifespan events to a mounted application, so the
mounted app opens (and creates or upgrades) the store itself before its first request,
once; served on its own it runs its lifespan as ``conveyor serve`` does. Keys and
their rules are ``create_app``'s: ``CONVEYOR_API_KEYS`` (or ``api_keys``), and with
no key at all /api answers only loopback, same-origin requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from ..app import App
from .application import create_app


class MountedServer:
    """An ASGI app serving one Conveyor App's API and dashboard under any path prefix.

    Mount it with ``Mount("/queue", app=app.asgi())`` (Starlette) or
    ``fastapi_app.mount("/queue", app.asgi())``; the dashboard's requests and assets
    are relative to its page, so they follow the prefix.
    """

    def __init__(
        self, app: App, api_keys: Iterable[str] | None = None, *, api_key_file: str | None = None
    ) -> None:
        self.app = app
        self.server = create_app(app, api_keys, api_key_file=api_key_file)
        self._opened = False
        self._opening = asyncio.Lock()

    async def _open(self) -> None:
        async with self._opening:
            if not self._opened:
                await run_in_threadpool(self.app.backend.migrate)
                self._opened = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._opened:
            await self._open()
        elif scope["type"] == "lifespan":
            self._opened = True  # served on its own: the inner lifespan opens the store at startup
        await self.server(scope, receive, send)


def asgi_app(
    app: App, api_keys: Iterable[str] | None = None, *, api_key_file: str | None = None
) -> MountedServer:
    """The ASGI app ``app.asgi()`` returns."""
    return MountedServer(app, api_keys, api_key_file=api_key_file)


__all__ = ["MountedServer", "asgi_app"]
