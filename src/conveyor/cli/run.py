"""Commands that run jobs or the backend: worker, process, migrate, serve, demo."""

from __future__ import annotations

import sys

import click

from ..cli_backend import backend_label, check_backend, mask_url, wait_for_backend
from ..cli_logging import setup_logging
from .common import (
    clean_errors,
    command_options,
    duration,
    emit,
    fail,
    memory_size,
    open_app,
    url_option,
)


@click.command()
@click.argument("app_path", metavar="APP")
@click.option("--queues", "-q", help="Comma-separated queues to serve (default: the queues of APP's tasks).")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Jobs run at once per process [5].")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--lease", callback=duration, help="Lease (visibility timeout) in seconds [30].")
@click.option("--grace", callback=duration, help="Seconds running jobs get to finish on SIGTERM [30].")
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    help="Jobs claimed ahead of free slots, fixed [adaptive: from observed run times and claim "
    "round trips, up to 500 for tiny jobs, none for slow ones]; 0: none.",
)
@click.option("--burst", is_flag=True, help="Exit when nothing is due (for scripts and tests).")
@click.option(
    "--no-schedules", "no_schedules", is_flag=True, help="Do not run schedules in this worker (others may)."
)
@click.option(
    "--max-memory",
    callback=memory_size,
    help="Address-space limit per worker process (512M, 2G; a bare number is MiB). A task that "
    "runs into it ends the process, and its job counts a lost attempt.",
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    envvar="CONVEYOR_METRICS_PORT",
    help="Serve Prometheus metrics at :PORT/metrics (one port for all --processes).",
)
@click.option(
    "--metrics-host", default="0.0.0.0", show_default=True, help="Address the metrics port binds to."
)
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
    max_memory: int | None,
    log_level: str,
    metrics_port: int | None,
    metrics_host: str,
    url: str | None,
    as_json: bool,
) -> None:
    """Run a worker for APP until SIGTERM/SIGINT, with the scheduler, pruner and alerter.

    A backend that does not answer at start is waited for (one log line per attempt);
    with --burst it is an error instead.
    """
    setup_logging(log_level, as_json=as_json)
    from ..worker.supervisor import is_child

    if processes > 1 and not is_child():
        # Before the run-time is imported: the children start as soon as possible.
        sys.exit(_supervise(processes, grace, metrics_port, metrics_host))
    from ..worker import Worker

    app = open_app(app_path, url)
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    metrics = None
    if metrics_port is not None:
        from ..worker.metrics import WorkerMetrics, serve, supervisor_run_dir

        metrics = WorkerMetrics()
        if supervisor_run_dir() is None:  # a supervised child writes snapshots its supervisor serves
            serve(metrics, metrics_port, metrics_host)
    worker = Worker(
        app,
        queues=queue_list,
        concurrency=concurrency,
        lease=lease,
        grace=grace,
        prefetch=prefetch,
        schedules=not no_schedules,
        metrics=metrics,
        max_memory=max_memory,
    )
    wait_for_backend(app, retry=not burst)
    worker.run(burst=burst)


def _supervise(processes: int, grace: float | None, metrics_port: int | None, metrics_host: str) -> int:
    """Run this command as ``processes`` children; with a metrics port, serve their sum on it."""
    from ..worker.supervisor import supervise

    if metrics_port is None:
        return supervise(sys.argv[1:], processes, grace if grace is not None else 30.0)
    from ..worker.metrics import SupervisorMetrics

    metrics = SupervisorMetrics(metrics_port, metrics_host)
    try:
        return supervise(sys.argv[1:], processes, grace if grace is not None else 30.0, metrics)
    finally:
        metrics.close()


@click.command()
@click.argument("app_path", metavar="APP")
@click.option("--batch-size", "-n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--queues", "-q", help="Comma-separated queues (default: the queues of APP's tasks).")
@command_options
def process(app_path: str, batch_size: int, queues: str | None, url: str | None, as_json: bool) -> None:
    """Process at most --batch-size due jobs, then exit (for cron)."""
    from ..worker import Worker

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


@click.command()
@click.argument("app_path", metavar="APP", required=False)
@command_options
def migrate(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Create or upgrade the backend's schema (idempotent; safe from several machines)."""
    app = open_app(app_path, url)
    app.backend.migrate()
    if as_json:
        emit({"migrated": True, "url": mask_url(app.url)})
    else:
        click.echo(f"schema up to date at {backend_label(app.url)}")


@click.command()
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
        from ..server import run_server
    except ImportError as exc:
        fail(f"serve needs the server extra: pip install 'conveyor[server]' ({exc})")
    app = open_app(app_path, url)
    check_backend(app)  # a backend that does not answer is one line here, not a failed startup
    run_server(app, host=host, port=port, api_key_file=api_key_file, log_level=log_level)


@click.command()
@click.option("--jobs", "job_count", default=240, show_default=True, type=click.IntRange(10, 100_000))
@click.option(
    "--path", type=click.Path(dir_okay=False), help="A new SQLite file [./conveyor-demo.db, recreated]."
)
@clean_errors
def demo(job_count: int, path: str | None) -> None:
    """A realistic run on the embedded default: a burst, flaky jobs, a failure table, a replay."""
    from ..demo import run_demo

    run_demo(job_count=job_count, path=path)
