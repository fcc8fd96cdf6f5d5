"""The backend a command uses, said plainly: its masked URL, a missing SQLite file, a silent server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from .app import App
from .errors import BackendUnavailable, ConfigurationError

log = logging.getLogger("conveyor.cli")

#: An id no job has: looking it up opens the backend (and its schema) without changing anything.
_PROBE_ID = "0" * 32
#: A worker waiting for its backend tries again after 1 s, doubling up to this.
MAX_WAIT = 30.0


def mask_url(url: str) -> str:
    """The URL with its password (in the netloc or a ``password=`` parameter) shown as ``***``.

    Only the password changes: the rest is kept character for character (``sqlite:////abs.db``).
    """
    parts = urlsplit(url)
    if parts.password:
        url = url.replace(f":{parts.password}@", ":***@", 1)
    base, mark, query = url.partition("?")
    if "password=" in query:
        pairs = [(k, "***" if k == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        url = base + mark + urlencode(pairs, safe="*")
    return url


def sqlite_path(url: str) -> Path | None:
    """The file a ``sqlite:///`` URL names (relative to the current directory), else None."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        return None
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    return Path(raw) if raw and raw != ":memory:" else None


def backend_label(url: str) -> str:
    """How human output names a backend: the masked URL, and where a relative SQLite file is."""
    path = sqlite_path(url)
    if path is not None and not path.is_absolute():
        return f"{mask_url(url)} ({path.resolve()})"
    return mask_url(url)


def require_existing_database(url: str, source: str) -> None:
    """Refuse a SQLite URL whose file does not exist, so a read-only command never creates one.

    ``source`` says where the URL came from (``--url``, ``CONVEYOR_URL``, the APP, the default).
    """
    path = sqlite_path(url)
    if path is None or path.exists():
        return
    where = path.resolve()
    missing = f"directory {where.parent} does not exist" if not where.parent.exists() else "no such file"
    raise ConfigurationError(
        f"no Conveyor database at {where}: {missing} ({url} from {source}); this command only reads "
        "and creates none: point at yours with --url sqlite:///path/to/file.db or CONVEYOR_URL, "
        "or run it in the directory that holds it"
    )


def check_backend(app: App) -> None:
    """Open the App's backend and make one lookup: raises BackendUnavailable if it does not answer."""
    app.backend.get(_PROBE_ID)


def unreachable_message(url: str, cause: str) -> str:
    """One line naming the backend (password masked) and why it cannot be reached."""
    masked = mask_url(url)
    return cause if masked in cause else f"cannot reach the backend {masked}: {cause}"


def wait_for_backend(
    app: App, *, retry: bool = True, sleep: Callable[[float], None] = time.sleep, max_wait: float = MAX_WAIT
) -> None:
    """Return once the App's backend answers; a worker starting before its database waits here.

    The first failure is logged with what happens next, then one line per attempt, retrying
    after 1 s, 2 s, 4 s ... up to ``max_wait``. Without ``retry`` the first failure is raised.
    """
    delay = 1.0
    attempt = 0
    while True:
        try:
            check_backend(app)
        except BackendUnavailable as exc:
            if not retry:
                raise
            attempt += 1
            if attempt == 1:
                log.warning(
                    "%s; retrying with backoff until it answers (Ctrl-C to stop)",
                    unreachable_message(app.url, str(exc)),
                )
            else:
                log.warning("attempt %d: %s", attempt, unreachable_message(app.url, str(exc)))
            sleep(delay)
            delay = min(max_wait, delay * 2)
            continue
        if attempt:
            log.info("backend %s answered after %d failed attempt(s)", mask_url(app.url), attempt)
        return
