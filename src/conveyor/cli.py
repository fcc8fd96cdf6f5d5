"""The ``conveyor`` command: worker, process, migrate, serve, enqueue, stats, jobs, schedules, alerts, demo.

Errors are one line on stderr and a non-zero exit (2 for bad usage); ``--json`` prints
machine output. Human output shows times in local time with the zone, JSON in UTC.
"""

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

from .actions import CLI
from .app import App
from .cli_backend import backend_label, check_backend, mask_url, require_existing_database, wait_for_backend
from .cli_errors import error_line, full_traceback
from .cli_logging import setup_logging
from .durations import parse_duration
from .loader import load_app
from .render import console, job_panel, jobs_table, queues_table, stats_table
from .states import ALL_STATES, PURGEABLE, RESUBMITTABLE

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 1 for an error the user can fix, 2 for bad usage (click's own).
EXIT_ERROR = 1


#: Keys of the click context's ``meta`` this module keeps per invocation.
_SHOW_TRACEBACK = "conveyor.traceback"
_BACKEND_URL = "conveyor.url"


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
            show = bool(meta.get(_SHOW_TRACEBACK)) or kwargs.get("log_level") == "debug"
            if show:
                click.echo(full_traceback(exc), err=True, nl=False)
            fail(error_line(exc, url=meta.get(_BACKEND_URL), traceback_shown=show))

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
    click.get_current_context().meta[_BACKEND_URL] = app.url
    app.actor = CLI  # the action trail names the command line as who retried or deleted
    if existing:
        require_existing_database(app.url, _url_source(app_path))
    return app


url_option = click.option(
    "--url", envvar="CONVEYOR_URL", help="Backend URL (default: CONVEYOR_URL, else ./conveyor.db)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
app_option = click.option("--app", "app_path", metavar="APP", help="module:attribute of a conveyor.App.")


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
    ctx.meta[_SHOW_TRACEBACK] = show_traceback


@main.command()
@click.argument("app_path", metavar="APP")
@click.option("--queues", "-q", help="Comma-separated queues to serve (default: the queues of APP's tasks).")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Jobs run at once per process [5].")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--lease", callback=duration, help="Lease (visibility timeout) in seconds [30].")
@click.option("--grace", callback=duration, help="Seconds running jobs get to finish on SIGTERM [30].")
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    help="Jobs claimed ahead of free slots [= concurrency]; more is faster for tiny jobs.",
)
@click.option("--burst", is_flag=True, help="Exit when nothing is due (for scripts and tests).")
@click.option(
    "--no-schedules", "no_schedules", is_flag=True, help="Do not run schedules in this worker (others may)."
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@url_option
@click.option("--json", "as_json", is_flag=True, help="Log one JSON object a line (time in UTC).")
@clean_errors
def worker(
    app_path: str,
    queues: str | None,
    concurrency: int | None,
    processes: int,
    lease: float | None,
    grace: float | None,
    prefetch: int | None,
    burst: bool,
    no_schedules: bool,
    log_level: str,
    url: str | None,
    as_json: bool,
) -> None:
    """Run a worker for APP until SIGTERM/SIGINT, with the scheduler, pruner and alerter.

    A backend that does not answer at start is waited for (one log line per attempt);
    with --burst it is an error instead.
    """
    setup_logging(log_level, as_json=as_json)
    from .worker import Worker
    from .worker.supervisor import is_child, supervise

    if processes > 1 and not is_child():
        sys.exit(supervise(sys.argv[1:], processes, grace if grace is not None else 30.0))
    app = open_app(app_path, url)
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    worker = Worker(
        app,
        queues=queue_list,
        concurrency=concurrency,
        lease=lease,
        grace=grace,
        prefetch=prefetch,
        schedules=not no_schedules,
    )
    wait_for_backend(app, retry=not burst)
    worker.run(burst=burst)


@main.command()
@click.argument("app_path", metavar="APP")
@click.option("--batch-size", "-n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--queues", "-q", help="Comma-separated queues (default: the queues of APP's tasks).")
@url_option
@json_option
@clean_errors
@admin_command
def process(app_path: str, batch_size: int, queues: str | None, url: str | None, as_json: bool) -> None:
    """Process at most --batch-size due jobs, then exit (for cron)."""
    from .worker import Worker

    app = open_app(app_path, url)
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    result = Worker(app, queues=queue_list, install_signal_handlers=False).process_batch(batch_size)
    if as_json:
        emit(result.to_dict())
    else:
        r = result
        click.echo(
            f"processed {r.processed}: {r.completed} completed, {r.retried} retried, "
            f"{r.failed} failed, {r.cancelled} cancelled"
        )


@main.command()
@click.argument("app_path", metavar="APP", required=False)
@url_option
@json_option
@clean_errors
@admin_command
def migrate(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Create or upgrade the backend's schema (idempotent; safe from several machines)."""
    app = open_app(app_path, url)
    app.backend.migrate()
    if as_json:
        emit({"migrated": True, "url": mask_url(app.url)})
    else:
        click.echo(f"schema up to date at {backend_label(app.url)}")


@main.command()
@click.argument("app_path", metavar="APP")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--api-key-file", type=click.Path(exists=True, dir_okay=False), help="File of API keys, one a line."
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@url_option
@clean_errors
def serve(
    app_path: str, host: str, port: int, api_key_file: str | None, log_level: str, url: str | None
) -> None:
    """Serve the HTTP API, /metrics and the dashboard for APP."""
    setup_logging(log_level)
    try:
        from .server import run_server
    except ImportError as exc:
        fail(f"serve needs the server extra: pip install 'conveyor[server]' ({exc})")
    app = open_app(app_path, url)
    check_backend(app)  # a backend that does not answer is one line here, not a failed startup
    run_server(app, host=host, port=port, api_key_file=api_key_file, log_level=log_level)


@main.command()
@click.argument("app_path", metavar="APP")
@click.argument("task")
@click.option("--args", "args_", callback=json_value(list), help="JSON array of positional arguments.")
@click.option("--kwargs", callback=json_value(dict), help="JSON object of keyword arguments.")
@click.option("--queue", help="Queue (default: the task's).")
@click.option("--priority", type=int)
@click.option("--delay", callback=duration, help="Seconds (or 5m, 2h) before it may run.")
@click.option("--key", help="Idempotency key.")
@url_option
@json_option
@clean_errors
@admin_command
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


@main.command()
@app_option
@url_option
@json_option
@clean_errors
@admin_command
def stats(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Counts by state, overall and per queue (same shape as GET /api/queue/stats)."""
    app = open_app(app_path, url, existing=True)
    data = app.stats()
    if as_json:
        emit(data)
    else:
        say_backend(app.url)
        console().print(stats_table(data))


@main.group()
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
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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
@app_option
@url_option
@json_option
@clean_errors
@admin_command
def jobs_cancel(job_id: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Cancel a job (waiting: at once; running: asked to stop)."""
    job = open_app(app_path, url, existing=True).cancel(job_id)
    note = " (cancel requested)" if job.state == "processing" else ""
    emit({"id": job.id, "status": job.state}) if as_json else click.echo(f"{job.id} {job.state}{note}")


@jobs.command("delete")
@click.argument("job_id")
@app_option
@url_option
@json_option
@clean_errors
@admin_command
def jobs_delete(job_id: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Delete a job that is not running, with its audit records."""
    open_app(app_path, url, existing=True).delete(job_id)
    emit({"id": job_id, "deleted": True}) if as_json else click.echo(f"{job_id} deleted")


@jobs.command("purge")
@click.option("--status", "-s", required=True, type=click.Choice(sorted(PURGEABLE)))
@click.option("--older-than", callback=duration, default="0", help="Age: 30s, 5m, 2h, 7d [0].")
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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


@main.group()
def queues() -> None:
    """Flow control: each queue's limits (stored in the backend, held across every worker) and pause."""


def _show_queue(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(data)
    else:
        console().print(queues_table([data]))


@queues.command("list")
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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
@app_option
@url_option
@json_option
@clean_errors
@admin_command
def queues_pause(queue: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Stop claims from QUEUE (enqueue still works; running jobs finish)."""
    _show_queue(open_app(app_path, url).pause_queue(queue), as_json)


@queues.command("resume")
@click.argument("queue")
@app_option
@url_option
@json_option
@clean_errors
@admin_command
def queues_resume(queue: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Let workers claim from QUEUE again."""
    _show_queue(open_app(app_path, url).resume_queue(queue), as_json)


@main.command()
@click.option("--jobs", "job_count", default=240, show_default=True, type=click.IntRange(10, 100_000))
@click.option(
    "--path", type=click.Path(dir_okay=False), help="A new SQLite file [./conveyor-demo.db, recreated]."
)
@clean_errors
def demo(job_count: int, path: str | None) -> None:
    """A realistic run on the embedded default: a burst, flaky jobs, a failure table, a replay."""
    from .demo import run_demo

    run_demo(job_count=job_count, path=path)


# -- schedules and failure alerts ------------------------------------------------------------
def _echo_schedules(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no schedules")
        return
    for row in rows:
        when = f"cron {row['cron']!r} {row['tz']}" if "cron" in row else f"every {row['every']:g}s"
        state = "paused" if row["paused"] else f"next {row['next_run_at']}"
        click.echo(f"{row['name']}: {row['task']} {when}, {state}, last {row['last_run_at'] or 'never'}")


@main.group()
def schedules() -> None:
    """List, add, remove, pause, resume or run schedules (stored in the backend)."""


@schedules.command("list")
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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
@url_option
@json_option
@clean_errors
@admin_command
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
    @app_option
    @url_option
    @json_option
    @clean_errors
    @admin_command
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


@main.group()
def alerts() -> None:
    """List, add or remove failure alerts (stored in the backend, evaluated by workers)."""


@alerts.command("list")
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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
@app_option
@url_option
@json_option
@clean_errors
@admin_command
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
@app_option
@url_option
@json_option
@clean_errors
@admin_command
def alerts_remove(name: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Delete alert NAME."""
    open_app(app_path, url).remove_alert(name)
    if as_json:
        emit({"removed": name})
    else:
        click.echo(f"removed alert {name}")


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


if __name__ == "__main__":  # pragma: no cover
    main()
