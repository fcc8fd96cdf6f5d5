"""The ``schedules`` and ``alerts`` groups."""

from __future__ import annotations

from typing import Any

import click

from .common import (
    admin_options,
    command_options,
    duration,
    emit,
    json_value,
    open_app,
)


# -- schedules and failure alerts ------------------------------------------------------------
def _echo_schedules(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no schedules")
        return
    for row in rows:
        when = f"cron {row['cron']!r} {row['tz']}" if "cron" in row else f"every {row['every']:g}s"
        state = "paused" if row["paused"] else f"next {row['next_run_at']}"
        click.echo(f"{row['name']}: {row['task']} {when}, {state}, last {row['last_run_at'] or 'never'}")


@click.group()
def schedules() -> None:
    """List, add, remove, pause, resume or run schedules (stored in the backend)."""


@schedules.command("list")
@admin_options
def schedules_list(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Every schedule with its next and last run."""
    rows = open_app(app_path, url).schedules()
    if as_json:
        emit(rows)
    else:
        _echo_schedules(rows)


@schedules.command("add")
@click.argument("name")
@click.option("--app", "app_path", metavar="APP", required=True, help="module:attribute (checks the task).")
@click.option("--task", required=True, help="The task each tick enqueues.")
@click.option("--cron", help="A cron expression, e.g. '0 2 * * *'.")
@click.option("--every", callback=duration, help="A period instead of cron: 30s, 5m, 1h.")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone of the cron expression.")
@click.option("--args", "args_", callback=json_value(list), help="JSON array of positional arguments.")
@click.option("--kwargs", callback=json_value(dict), help="JSON object of keyword arguments.")
@click.option("--queue", help="Queue of the jobs [the task's].")
@click.option("--missed", type=click.Choice(["latest", "skip"]), default="latest", show_default=True)
@command_options
def schedules_add(
    name: str,
    app_path: str,
    task: str,
    cron: str | None,
    every: float | None,
    tz: str,
    args_: list[Any] | None,
    kwargs: dict[str, Any] | None,
    queue: str | None,
    missed: str,
    url: str | None,
    as_json: bool,
) -> None:
    """Create or update schedule NAME; it persists until removed."""
    app = open_app(app_path, url)
    row = app.schedule(
        name, task=task, cron=cron, every=every, tz=tz, args=args_, kwargs=kwargs, queue=queue, missed=missed
    )
    if as_json:
        emit(row)
    else:
        _echo_schedules([row])


def _schedule_action(action: str, help_text: str) -> None:
    @schedules.command(action, help=help_text)
    @click.argument("name")
    @admin_options
    def command(name: str, app_path: str | None, url: str | None, as_json: bool) -> None:
        app = open_app(app_path, url)
        if action == "remove":
            app.unschedule(name)
            result: dict[str, Any] = {"removed": name}
        elif action == "run":
            job = app.run_schedule(name)
            result = {"id": job.id, "status": job.state}
        else:
            result = app.pause_schedule(name) if action == "pause" else app.resume_schedule(name)
        if as_json:
            emit(result)
        elif action == "remove":
            click.echo(f"removed schedule {name}")
        elif action == "run":
            click.echo(f"enqueued {result['id']}")
        else:
            _echo_schedules([result])


_schedule_action("remove", "Delete schedule NAME (jobs it enqueued stay).")
_schedule_action("pause", "Stop NAME's ticks until resumed.")
_schedule_action("resume", "Resume NAME from its next tick.")
_schedule_action("run", "Enqueue NAME's job now, besides its ticks.")


@click.group()
def alerts() -> None:
    """List, add or remove failure alerts (stored in the backend, evaluated by workers)."""


@alerts.command("list")
@admin_options
def alerts_list(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Every alert and when it last fired."""
    rows = open_app(app_path, url).alerts()
    if as_json:
        emit(rows)
        return
    if not rows:
        click.echo("no alerts")
    for row in rows:
        where = row["queue"] or "all queues"
        click.echo(
            f"{row['name']}: {row['threshold']} failed in {row['window']} on {where} -> {row['url']}, "
            f"last fired {row['last_fired_at'] or 'never'}"
        )


@alerts.command("add")
@click.argument("name")
@click.option("--webhook", "hook", required=True, help="URL the signed POST goes to (e.g. a Slack webhook).")
@click.option("--threshold", type=int, required=True, help="Failed jobs within the window that fire it.")
@click.option("--window", required=True, help="5m, 1h, ...: the window counted, and the quiet time after.")
@click.option("--queue", help="Count one queue only [all].")
@admin_options
def alerts_add(
    name: str,
    hook: str,
    threshold: int,
    window: str,
    queue: str | None,
    app_path: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Create or update alert NAME."""
    row = open_app(app_path, url).alert(name, url=hook, threshold=threshold, window=window, queue=queue)
    if as_json:
        emit(row)
    else:
        click.echo(f"alert {name}: {threshold} failed in {row['window']} -> {hook}")


@alerts.command("remove")
@click.argument("name")
@admin_options
def alerts_remove(name: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Delete alert NAME."""
    open_app(app_path, url).remove_alert(name)
    if as_json:
        emit({"removed": name})
    else:
        click.echo(f"removed alert {name}")
