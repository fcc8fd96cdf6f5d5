"""Commands on jobs: enqueue, stats and the ``jobs`` group."""

from __future__ import annotations

from typing import Any

import click

from ..render import console, job_panel, jobs_table, stats_table
from ..states import ALL_STATES, PURGEABLE, RESUBMITTABLE
from .common import (
    admin_options,
    command_options,
    duration,
    emit,
    json_value,
    open_app,
    say_backend,
)


@click.command()
@click.argument("app_path", metavar="APP")
@click.argument("task")
@click.option("--args", "args_", callback=json_value(list), help="JSON array of positional arguments.")
@click.option("--kwargs", callback=json_value(dict), help="JSON object of keyword arguments.")
@click.option("--queue", help="Queue (default: the task's).")
@click.option("--priority", type=int)
@click.option("--delay", callback=duration, help="Seconds (or 5m, 2h) before it may run.")
@click.option("--key", help="Idempotency key.")
@command_options
def enqueue(
    app_path: str,
    task: str,
    args_: list[Any] | None,
    kwargs: dict[str, Any] | None,
    queue: str | None,
    priority: int | None,
    delay: float | None,
    key: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Enqueue TASK of APP."""
    app = open_app(app_path, url)
    job = app.enqueue(task, args=args_, kwargs=kwargs, queue=queue, priority=priority, delay=delay, key=key)
    if as_json:
        emit({"id": job.id, "status": job.state})
    else:
        click.echo(f"{job.id} {job.state}")


@click.command()
@admin_options
def stats(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Counts by state, overall and per queue (same shape as GET /api/queue/stats)."""
    app = open_app(app_path, url, existing=True)
    data = app.stats()
    if as_json:
        emit(data)
    else:
        say_backend(app.url)
        console().print(stats_table(data))


@click.group()
def jobs() -> None:
    """Inspect and act on jobs: the failure table lives here.

    These commands never create a database: pointed at a SQLite file that does not
    exist, they say so.
    """


@jobs.command("list")
@click.option("--status", "-s", type=click.Choice(ALL_STATES), help="Filter by state.")
@click.option("--queue", "-q", help="Filter by queue.")
@click.option("--task", "-t", help="Filter by task.")
@click.option("--group", "-g", help="Filter by group (flow control).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0))
@admin_options
def jobs_list(
    status: str | None,
    queue: str | None,
    task: str | None,
    group: str | None,
    limit: int,
    offset: int,
    app_path: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """List jobs, newest first (--status failed is the failure table)."""
    app = open_app(app_path, url, existing=True)
    page = app.jobs(status=status, queue=queue, task=task, group=group, limit=limit, offset=offset)
    if as_json:
        emit(
            {
                "items": [job.to_dict(with_attempts=False) for job in page],
                "total": page.total,
                "limit": limit,
                "offset": offset,
            }
        )
    else:
        title = "Failure table" if status == "failed" else "Jobs"
        say_backend(app.url)
        console().print(jobs_table(page.items, title, page.total))


@jobs.command("show")
@click.argument("job_id")
@admin_options
def jobs_show(job_id: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Show one job with its attempts and traceback."""
    app = open_app(app_path, url, existing=True)
    job = app.get(job_id)
    if as_json:
        emit(job.to_dict())
    else:
        say_backend(app.url)
        console().print(job_panel(job))


@jobs.command("retry")
@click.argument("job_id", required=False)
@click.option(
    "--status", "-s", type=click.Choice(sorted(RESUBMITTABLE)), help="Resubmit every job in this state."
)
@click.option("--queue", "-q", help="With --status: only this queue.")
@click.option("--task", "-t", help="With --status: only this task.")
@click.option("--args", "args_", callback=json_value(list), help="Replace the arguments (JSON array).")
@click.option("--kwargs", callback=json_value(dict), help="Replace the keyword arguments (JSON object).")
@admin_options
def jobs_retry(
    job_id: str | None,
    status: str | None,
    queue: str | None,
    task: str | None,
    args_: list[Any] | None,
    kwargs: dict[str, Any] | None,
    app_path: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Resubmit a failed (or cancelled) job, or all of them with --status."""
    if (job_id is None) == (status is None):
        raise click.UsageError("give a job ID or --status (not both)")
    app = open_app(app_path, url, existing=True)
    if job_id is not None:
        job = app.resubmit(job_id, args=args_, kwargs=kwargs)
        emit({"id": job.id, "status": job.state}) if as_json else click.echo(f"{job.id} {job.state}")
        return
    assert status is not None
    count = app.resubmit_many(status, queue=queue, task=task, args=args_, kwargs=kwargs)
    emit({"resubmitted": count}) if as_json else click.echo(f"resubmitted {count} job(s)")


@jobs.command("cancel")
@click.argument("job_id")
@admin_options
def jobs_cancel(job_id: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Cancel a job (waiting: at once; running: asked to stop)."""
    job = open_app(app_path, url, existing=True).cancel(job_id)
    note = " (cancel requested)" if job.state == "processing" else ""
    emit({"id": job.id, "status": job.state}) if as_json else click.echo(f"{job.id} {job.state}{note}")


@jobs.command("delete")
@click.argument("job_id")
@admin_options
def jobs_delete(job_id: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Delete a job that is not running, with its audit records."""
    open_app(app_path, url, existing=True).delete(job_id)
    emit({"id": job_id, "deleted": True}) if as_json else click.echo(f"{job_id} deleted")


@jobs.command("purge")
@click.option("--status", "-s", required=True, type=click.Choice(sorted(PURGEABLE)))
@click.option("--older-than", callback=duration, default="0", help="Age: 30s, 5m, 2h, 7d [0].")
@admin_options
def jobs_purge(status: str, older_than: float, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Delete finished jobs in a state that finished longer ago than --older-than."""
    app = open_app(app_path, url, existing=True)
    if as_json:
        emit({"purged": app.purge(status, older_than)})
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("purging {task.completed} {task.description}")) as bar:
        task = bar.add_task(f"{status} job(s)", total=None)
        total = app.purge(status, older_than, progress=lambda n: bar.update(task, completed=n))
    click.echo(f"purged {total} {status} job(s)")
