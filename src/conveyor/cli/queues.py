"""The ``queues`` group: flow-control limits and pause."""

from __future__ import annotations

from typing import Any

import click

from ..render import console, queues_table
from .common import (
    admin_options,
    emit,
    open_app,
    say_backend,
)


@click.group()
def queues() -> None:
    """Flow control: each queue's limits (stored in the backend, held across every worker) and pause."""


def _show_queue(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(data)
    else:
        console().print(queues_table([data]))


@queues.command("list")
@admin_options
def queues_list(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Every queue with jobs or settings: limits, paused or throttled now, busiest groups."""
    app = open_app(app_path, url, existing=True)
    data = app.queues()
    if as_json:
        emit({"items": data})
    else:
        say_backend(app.url)
        console().print(queues_table(data))


def _setting(name: str, text: str) -> Any:
    """A limit as typed: 'none' removes it; counts become ints (the model refuses bad ones by value)."""
    if text == "none":
        return None
    if name.endswith("concurrency"):
        try:
            return int(text)
        except ValueError:
            return text
    return text


@queues.command("set")
@click.argument("queue")
@click.option("--concurrency", help="Most jobs processing at once, across every worker ('none' removes it).")
@click.option("--rate-limit", help="Most starts per period: 100/m, 5/s, 5/10s ('none' removes it).")
@click.option("--group-concurrency", help="Most jobs of one group processing at once ('none' removes it).")
@click.option("--group-rate-limit", help="Most starts of one group per period ('none' removes it).")
@admin_options
def queues_set(
    queue: str,
    concurrency: str | None,
    rate_limit: str | None,
    group_concurrency: str | None,
    group_rate_limit: str | None,
    app_path: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Set a queue's limits; options not given stay as they are. Applies from the next claim."""
    given = {
        "concurrency": concurrency,
        "rate_limit": rate_limit,
        "group_concurrency": group_concurrency,
        "group_rate_limit": group_rate_limit,
    }
    changes = {name: _setting(name, text) for name, text in given.items() if text is not None}
    if not changes:
        raise click.UsageError(
            "give at least one of --concurrency, --rate-limit, --group-concurrency, --group-rate-limit"
        )
    _show_queue(open_app(app_path, url).configure_queue(queue, **changes), as_json)


@queues.command("pause")
@click.argument("queue")
@admin_options
def queues_pause(queue: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Stop claims from QUEUE (enqueue still works; running jobs finish)."""
    _show_queue(open_app(app_path, url).pause_queue(queue), as_json)


@queues.command("resume")
@click.argument("queue")
@admin_options
def queues_resume(queue: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Let workers claim from QUEUE again."""
    _show_queue(open_app(app_path, url).resume_queue(queue), as_json)
