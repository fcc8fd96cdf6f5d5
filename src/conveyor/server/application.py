"""``create_app``: the Starlette application serving one Conveyor App."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..app import App
from .auth import KeyChecker, load_api_keys
from .errors import ApiError, error_response
from .metrics import Metrics
from .routes import ROUTES
from .state import ServerState

_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route {request.url.path!r}; GET /openapi.json lists every route"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow")
        message = f"{request.method} is not allowed on {request.url.path!r}; allowed: {allowed}"
    else:
        message = str(exc.detail)
    error = ApiError(exc.status_code, _CODES.get(exc.status_code, "http_error"), message)
    return error_response(error, dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(500, "internal_error", "internal error; the server log has the details"))


def create_app(
    app: App, api_keys: Iterable[str] | None = None, *, api_key_file: str | None = None
) -> Starlette:
    """The ASGI application for ``app``.

    ``api_keys`` default to ``CONVEYOR_API_KEYS`` plus ``api_key_file``. With no key at
    all, /api answers only loopback, same-origin requests (``run_server`` also refuses
    to bind anything but loopback then).
    """
    keys = list(api_keys) if api_keys is not None else load_api_keys(api_key_file)
    state = ServerState(app, KeyChecker(keys), Metrics(app))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Open (and create or upgrade) the store before the first request, not during it.
        await run_in_threadpool(app.backend.migrate)
        yield

    # The dashboard's style sheet and ES modules, shipped inside the package (no key needed).
    assets = Mount("/assets", StaticFiles(packages=[("conveyor.server", "static")]), name="assets")
    application = Starlette(
        routes=[*ROUTES, assets],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    application.state.conveyor = state
    return application
