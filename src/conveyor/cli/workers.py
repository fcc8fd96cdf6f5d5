"""The ``workers`` command: the live workers."""

from __future__ import annotations

import click

from ..render import console, workers_table
from .common import (
    app_option,
    clean_errors,
    emit,
    json_option,
    open_app,
    url_option,
)


@click.command()
@app_option
@url_option
@json_option
@clean_errors
def workers(app_path: str | None, url: str | None, as_json: bool) -> None:
    """The live workers: each one's host, pid, queues, busy slots, running jobs and last heartbeat."""
    data = open_app(app_path, url).workers()
    if as_json:
        emit(data)
    else:
        console().print(workers_table(data))
