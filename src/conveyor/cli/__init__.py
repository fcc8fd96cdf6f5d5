"""The ``conveyor`` command: worker, process, migrate, serve, enqueue, stats, jobs, queues,
schedules, alerts, demo.

Errors are one line on stderr and a non-zero exit (2 for bad usage); ``--json`` prints
machine output. Human output shows times in local time with the zone, JSON in UTC.
Each command group lives in its own module; this one is the group they plug into.
"""

from __future__ import annotations

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
from .jobs import enqueue, jobs, stats
from .queues import queues
from .run import demo, migrate, process, serve, worker
from .schedules import alerts, schedules
from .workers import workers

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (
    worker,
    process,
    migrate,
    serve,
    enqueue,
    stats,
    workers,
    jobs,
    queues,
    demo,
    schedules,
    alerts,
):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
