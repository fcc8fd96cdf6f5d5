"""The built-in task ``conveyor.http``, registered on every App (the one place it is)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Permanent
from .request import HTTP_KWARGS, HTTP_TASK, MAX_TIMEOUT, check_http_kwargs, send_request
from .signing import signing_secret

if TYPE_CHECKING:
    from ..app import App
    from ..task import Task


def install_http_task(app: App) -> Task[Any, Any]:
    """Register ``conveyor.http`` on ``app`` (idempotent); returns the task."""
    existing = app.tasks.get(HTTP_TASK)
    if existing is not None and existing.fn is not None:
        return existing

    def conveyor_http(*args: Any, **kwargs: Any) -> dict[str, Any]:
        """Send the HTTP request the job's kwargs describe: {url, method, json|body, headers, timeout}."""
        if args:
            raise Permanent(f"{HTTP_TASK} takes keyword arguments only ({', '.join(HTTP_KWARGS)}), got args")
        try:
            spec = check_http_kwargs(kwargs)
        except ValueError as exc:
            raise Permanent(str(exc)) from None
        return send_request(spec, signing_secret(app.settings))

    # The request's own timeout is at most MAX_TIMEOUT; the margin lets it report first.
    return app.task(name=HTTP_TASK, timeout=MAX_TIMEOUT + 30)(conveyor_http)
