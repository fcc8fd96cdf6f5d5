"""``run_server``: serve the API with uvicorn, refusing an open API on a public interface."""

from __future__ import annotations

import logging

from ..app import App
from ..errors import ConfigurationError
from .application import create_app
from .auth import API_KEYS_ENV, is_loopback, load_api_keys

log = logging.getLogger("conveyor.server")


def check_binding(host: str, keys: list[str]) -> None:
    """Refuse to serve a key-less API on anything but loopback, and say why."""
    if not keys and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host!r} without an API key: anyone who can reach it could enqueue, "
            f"retry and delete jobs. Set {API_KEYS_ENV} (comma separated) or pass --api-key-file, "
            "or bind to 127.0.0.1"
        )


def run_server(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_file: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve the HTTP API, /metrics and the dashboard for ``app`` until SIGINT/SIGTERM."""
    import uvicorn

    keys = load_api_keys(api_key_file)
    check_binding(host, keys)
    if keys:
        log.info("API keys: %d configured; /api needs x-api-key", len(keys))  # the count, never a key
    else:
        log.warning(
            "no API key configured (%s or --api-key-file): serving on %s only, and /api answers "
            "same-origin requests from this machine without a key",
            API_KEYS_ENV,
            host,
        )
    config = uvicorn.Config(
        create_app(app, keys),
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        # A Starlette app has a lifespan: the store is opened before the first request.
        lifespan="on",
    )
    try:
        uvicorn.Server(config).run()
    finally:
        app.close()
