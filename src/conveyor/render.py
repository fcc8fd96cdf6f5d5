"""Human output for the CLI and the demo: rich tables for stats, job lists and one job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .job import Job
from .states import ALL_STATES

STATE_STYLES = {
    "pending": "cyan",
    "processing": "yellow",
    "retry": "magenta",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "dim",
}


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def state_text(state: str) -> Text:
    """A state word in its colour."""
    return Text(state, style=STATE_STYLES.get(state, ""))


def stats_table(stats: dict[str, Any]) -> Table:
    """Counts by state, a row per queue and a total row."""
    table = Table(title="Queue stats", title_justify="left")
    table.add_column("queue")
    for state in ALL_STATES:
        table.add_column(state, justify="right", style=STATE_STYLES[state])
    for queue, counts in sorted(stats["queues"].items()):
        table.add_row(queue, *(str(counts.get(s, 0)) for s in ALL_STATES))
    table.add_row(Text("total", style="bold"), *(str(stats["counts"].get(s, 0)) for s in ALL_STATES))
    age = stats.get("oldest_pending_age_s")
    table.caption = "oldest due pending job: " + ("none" if age is None else f"{age:.1f}s")
    return table


def jobs_table(jobs: list[Job], title: str, total: int | None = None) -> Table:
    """A job listing; the failure table when the jobs are failed ones."""
    table = Table(title=title, title_justify="left")
    for column in ("id", "task", "queue", "status", "attempt", "created", "error"):
        table.add_column(column, no_wrap=column != "error", overflow="fold" if column == "id" else "ellipsis")
    for r in jobs:
        table.add_row(
            r.id,
            r.task,
            r.queue,
            state_text(r.state),
            f"{r.attempt}/{r.max_attempts}",
            _when(r.created_at),
            _short(r.error, 50),
        )
    if total is not None:
        table.caption = f"{len(jobs)} of {total}"
    return table


def job_panel(job: Job) -> Panel:
    """Everything about one job, with its attempts."""
    # The stored result as a value (``job.result()`` is the method that waits for it).
    result = job.to_dict(with_attempts=False)["result"]
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    rows: list[tuple[str, Any]] = [
        ("id", job.id),
        ("task", job.task),
        ("queue", job.queue),
        ("status", state_text(job.state)),
        ("attempt", f"{job.attempt}/{job.max_attempts}"),
        ("priority", str(job.priority)),
        ("args", repr(job.args)),
        ("kwargs", repr(job.kwargs)),
        ("key", job.key or "-"),
        ("created", _when(job.created_at)),
        ("run at", _when(job.run_at)),
        ("finished", _when(job.finished_at)),
        ("result", "-" if result is None else repr(result)),
        ("error", job.error or "-"),
    ]
    if job.cancel_requested:
        rows.append(("cancel", "requested"))
    if job.progress is not None:
        rows.append(("progress", progress_text(job.progress)))
    if job.trace_id is not None:
        rows.append(("trace id", job.trace_id))
    for name, value in rows:
        info.add_row(name, value)
    attempts = Table(title="attempts", title_justify="left")
    for column in ("#", "worker", "started", "finished", "outcome", "error"):
        attempts.add_column(column)
    for a in job.attempts:
        attempts.add_row(
            str(a.attempt),
            a.worker or "-",
            _when(a.started_at),
            _when(a.finished_at),
            state_text(a.outcome),
            _short(a.error, 40),
        )
    parts: list[Any] = [info, attempts]
    if job.traceback:
        parts.append(Panel(job.traceback.rstrip(), title="traceback", border_style="red"))
    return Panel(Group(*parts), title=f"job {job.id}")


def progress_text(progress: dict[str, Any]) -> str:
    """``40% 40 of 100 rows (09:30:01)``: a job's reported progress in one line."""
    fraction, message = progress.get("fraction"), progress.get("message")
    parts = [] if fraction is None else [f"{fraction:.0%}"]
    if message:
        parts.append(str(message))
    updated = progress.get("updated_at")
    if updated:
        parts.append(f"({_when(datetime.fromisoformat(updated))})")
    return " ".join(parts) or "-"


def workers_table(workers: list[dict[str, Any]]) -> Table:
    """The live workers, one row each."""
    table = Table(title=f"Live workers ({len(workers)})", title_justify="left")
    for column in ("id", "host", "pid", "queues", "busy", "started", "last seen", "version"):
        table.add_column(column)
    for w in workers:
        table.add_row(
            w["id"],
            w["host"],
            str(w["pid"]),
            ",".join(w["queues"]),
            f"{len(w['running'])}/{w['concurrency']}",
            _when(datetime.fromisoformat(w["started_at"])),
            _when(datetime.fromisoformat(w["last_seen_at"])),
            w["version"],
        )
    return table


def console(stderr: bool = False) -> Console:
    """The console the CLI prints to (wide enough for job ids when not on a terminal)."""
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, highlight=False, width=None if probe.is_terminal else 160)
