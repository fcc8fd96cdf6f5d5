"""What the commands share: error handling, JSON output, option callbacks, opening the App."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from ..actions import CLI
from ..app import App
from ..cli_backend import backend_label, require_existing_database
from ..cli_errors import error_line, full_traceback
from ..durations import parse_duration
from ..loader import load_app

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 1 for an error the user can fix, 2 for bad usage (click's own).
EXIT_ERROR = 1


#: Keys of the click context's ``meta`` this module keeps per invocation.
SHOW_TRACEBACK = "conveyor.traceback"
BACKEND_URL = "conveyor.url"


def fail(message: str) -> None:
    """Print one clear line and exit non-zero."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def clean_errors(fn: F) -> F:
    """Turn any error into one line and exit code 1; the traceback only when asked for.

    Usage errors stay click's (usage text, exit 2). ``conveyor --traceback`` or
    ``--log-level debug`` print the whole traceback before the line.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - every error becomes one line, never a traceback storm
            meta = click.get_current_context().meta
            show = bool(meta.get(SHOW_TRACEBACK)) or kwargs.get("log_level") == "debug"
            if show:
                click.echo(full_traceback(exc), err=True, nl=False)
            fail(error_line(exc, url=meta.get(BACKEND_URL), traceback_shown=show))

    return wrapper  # type: ignore[return-value]


@contextmanager
def _quiet_server_checks() -> Iterator[None]:
    # The Redis server's settings (persistence, eviction) concern the workers, which log them
    # at start; a one-off admin command does not repeat them every time it runs.
    checks = logging.getLogger("conveyor.redis")
    level = checks.level
    checks.setLevel(logging.ERROR)
    try:
        yield
    finally:
        checks.setLevel(level)


def admin_command(fn: F) -> F:
    """A one-off command: server-settings warnings are left to the workers."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _quiet_server_checks():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def emit(data: Any) -> None:
    """Print JSON for scripts (times in ISO-8601 UTC)."""
    click.echo(json.dumps(data, indent=2, default=_json_default))


def say_backend(url: str) -> None:
    """Human output first names the backend it read, so a wrong directory shows at once."""
    click.secho(f"backend {backend_label(url)}", dim=True)


def duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    """A click callback parsing ``30s``, ``5m``, ``2h``, ``7d``."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


#: Suffixes of ``--max-memory`` and the bytes each stands for (a bare number is MiB).
SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def memory_size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """A click callback parsing ``512M``, ``2G``, ``65536K`` or ``512`` (MiB) into bytes."""
    if value is None:
        return None
    text = value.strip().lower().removesuffix("b").removesuffix("i")
    unit = SIZE_UNITS.get(text[-1:], 0)
    number = text[:-1] if unit else text
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if amount <= 0:
        raise click.BadParameter(f"{value!r} is not a size such as 512M, 2G or 512 (MiB)")
    return int(amount * (unit or SIZE_UNITS["m"]))


def json_value(kind: type) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    """A click callback parsing a JSON list/object argument."""

    def parse(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, kind):
            raise click.BadParameter(f"must be a JSON {'array' if kind is list else 'object'}")
        return data

    return parse


def _url_source(app_path: str | None) -> str:
    ctx = click.get_current_context()
    source = ctx.get_parameter_source("url")
    if source is ParameterSource.COMMANDLINE:
        return "--url"
    if source is ParameterSource.ENVIRONMENT:
        return "CONVEYOR_URL"
    return f"APP {app_path}" if app_path else "the default"


def open_app(app_path: str | None, url: str | None, *, existing: bool = False) -> App:
    """The App at APP (with ``--url`` overriding its URL), or a bare App on the URL.

    With ``existing`` (read-only and admin commands), a SQLite file that does not exist is
    refused instead of created.
    """
    if app_path:
        app = load_app(app_path)
        if url and url != app.url:
            app.close()
            app.settings = replace(app.settings, url=url)
    else:
        app = App(url)
    click.get_current_context().meta[BACKEND_URL] = app.url
    app.actor = CLI  # the action trail names the command line as who retried or deleted
    if existing:
        require_existing_database(app.url, _url_source(app_path))
    return app


url_option = click.option(
    "--url", envvar="CONVEYOR_URL", help="Backend URL (default: CONVEYOR_URL, else ./conveyor.db)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
app_option = click.option("--app", "app_path", metavar="APP", help="module:attribute of a conveyor.App.")


def command_options(fn: F) -> F:
    """--url and --json, errors as one line, server-settings warnings left to the workers."""
    return url_option(json_option(clean_errors(admin_command(fn))))


def admin_options(fn: F) -> F:
    """What most admin commands take: --app besides the ``command_options``."""
    return app_option(command_options(fn))
