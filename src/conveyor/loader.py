"""Import the ``module:attribute`` an App lives at, with the current directory on sys.path."""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .app import App

_APP_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$")


def load_app(path: str) -> App:
    """The App at ``module:attribute`` (as celery and dramatiq import theirs)."""
    from .app import App

    if not _APP_PATH.match(path):
        raise ConfigurationError(f"APP must be module:attribute (e.g. myproject.tasks:app), got {path!r}")
    module_name, attribute = path.split(":", 1)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import module {module_name!r} of APP {path!r}: not found from {cwd}"
            ) from None
        raise
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, App):
        raise ConfigurationError(f"{path!r} is a {type(target).__name__}, not a conveyor.App")
    return target
