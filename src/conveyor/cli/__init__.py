"""The ``conveyor`` command: worker, process, migrate, serve, enqueue, stats, jobs, queues,
schedules, alerts, demo.

Errors are one line on stderr and a non-zero exit (2 for bad usage); ``--json`` prints
machine output. Human output shows times in local time with the zone, JSON in UTC.
Each command group lives in its own module; this one is the group they plug into. A
command's module is imported when that command runs (or help lists it), so ``conveyor
worker`` never loads the table renderer (rich) the admin commands use.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from importlib import import_module
from typing import Any

import click

from .common import (
    EXIT_ERROR,
    SHOW_TRACEBACK,
    admin_command,
    clean_errors,
    duration,
    emit,
    fail,
    json_value,
    memory_size,
    open_app,
    say_backend,
)

#: Each command: the module (in this package) that defines it, imported on first use.
COMMAND_MODULES: dict[str, str] = {
    "worker": "run",
    "process": "run",
    "migrate": "run",
    "serve": "run",
    "enqueue": "jobs",
    "stats": "jobs",
    "workers": "workers",
    "jobs": "jobs",
    "queues": "queues",
    "demo": "run",
    "schedules": "schedules",
    "alerts": "schedules",
}

__all__ = [
    "EXIT_ERROR",
    "admin_command",
    "clean_errors",
    "duration",
    "emit",
    "fail",
    "json_value",
    "main",
    "memory_size",
    "open_app",
    "say_backend",
]


class LazyGroup(click.Group):
    """A group whose commands are imported from ``COMMAND_MODULES`` when first asked for.

    ``commands`` (the whole mapping) loads them all, as a plain group has them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loaded: dict[str, click.Command] = {}
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> MutableMapping[str, click.Command]:
        """Every command, loading those not imported yet."""
        for name in COMMAND_MODULES:
            self._load(name)
        return self._loaded

    @commands.setter
    def commands(self, value: MutableMapping[str, click.Command]) -> None:
        self._loaded = dict(value)

    def _load(self, name: str) -> click.Command | None:
        found = self._loaded.get(name)
        if found is None and name in COMMAND_MODULES:
            module = import_module(f"{__name__}.{COMMAND_MODULES[name]}")
            found = self._loaded[name] = getattr(module, name)
        return found

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named ``cmd_name``, importing only its module."""
        return self._load(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, without importing any."""
        return sorted({*COMMAND_MODULES, *self._loaded})


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="conveyor")
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    envvar="CONVEYOR_TRACEBACK",
    help="On an error, print the whole traceback, not only its one-line summary.",
)
@click.pass_context
def main(ctx: click.Context, show_traceback: bool) -> None:
    """Conveyor: a background job queue that does not drop work."""
    ctx.meta[SHOW_TRACEBACK] = show_traceback


if __name__ == "__main__":  # pragma: no cover
    main()
