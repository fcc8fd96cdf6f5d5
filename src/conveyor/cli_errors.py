"""How the CLI reports an error: one line with the type, the message and where in the user's code.

Conveyor's own errors (:class:`conveyor.ConveyorError`) name the bad value and the fix, so
their message is the line. Any other exception (a ``KeyError`` raised while importing the
user's module, a driver error) also gets its type, and the innermost frame of the user's own
code (``tasks.py:12``) when the traceback passes through it. The whole traceback is printed
only when asked for (``conveyor --traceback ...`` or ``--log-level debug``).
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from pathlib import Path
from types import TracebackType

from .cli_backend import unreachable_message
from .errors import BackendUnavailable, ConveyorError

_PACKAGE_DIR = Path(__file__).resolve().parent
#: Directories whose code is not the user's: the standard library and installed packages.
_LIBRARY_DIRS = tuple(
    {
        Path(p).resolve()
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(key))
    }
)


def is_user_file(filename: str) -> bool:
    """True for a source file of the user's own code (not Conveyor, the stdlib or a package)."""
    if not filename or filename.startswith("<"):
        return False
    path = Path(filename).resolve()
    if path.is_relative_to(_PACKAGE_DIR):
        return False
    return not any(path.is_relative_to(d) for d in _LIBRARY_DIRS)


def _shown_path(filename: str) -> str:
    path = Path(filename).resolve()
    cwd = Path(os.getcwd()).resolve()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def user_location(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame of the user's code in ``exc``'s traceback, else None."""
    found: str | None = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if is_user_file(code.co_filename):
            found = f"{_shown_path(code.co_filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename and is_user_file(exc.filename):
        found = f"{_shown_path(exc.filename)}:{exc.lineno}"
    return found


def _message(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines)


def error_line(exc: BaseException, *, url: str | None = None, traceback_shown: bool = False) -> str:
    """The one line (without ``Error: ``) that reports ``exc``; ``url`` is the backend in use."""
    if isinstance(exc, BackendUnavailable) and url:
        return unreachable_message(url, _message(exc))
    text = _message(exc)
    if not isinstance(exc, ConveyorError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = user_location(exc)
    if where is not None:
        text += f" (at {where}"
        text += ")" if traceback_shown else "; conveyor --traceback ... shows the whole traceback)"
    return text


def full_traceback(exc: BaseException) -> str:
    """The whole traceback of ``exc``, as Python prints it."""
    return "".join(traceback.format_exception(exc))
