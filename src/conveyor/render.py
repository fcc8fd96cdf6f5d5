"""Human output for the CLI and the demo: rich tables for stats, job lists and one job.

Times are shown in local time with the zone named (JSON output carries UTC instead).
Listings fit the terminal: job ids are never cut, columns that do not fit wrap or
are left out in a fixed order, and the error column is always kept.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rich.cells import cell_len
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .backends.base import AttemptRecord
from .cli_logging import local_time
from .states import ALL_STATES

STATE_STYLES = {
    "pending": "cyan",
    "processing": "yellow",
    "retry": "magenta",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "dim",
}

#: Width of the console when output is not a terminal and COLUMNS is unset (pipes, files).
PIPE_WIDTH = 160
#: The longest first line of an error shown in a listing (``jobs show`` has all of it).
ERROR_EXCERPT = 200
#: A panel's border and padding take this many columns from the table inside it.
PANEL_FRAME = 4
#: The narrowest a wrapping column gets, however narrow the terminal.
MIN_WRAP_WIDTH = 6


class ListedJob(Protocol):
    """What a listing shows of a job (a ``conveyor.Job`` or a backend's ``JobRecord``)."""

    @property
    def id(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def error(self) -> str | None: ...


class ShownJob(ListedJob, Protocol):
    """What ``conveyor jobs show`` prints of a job."""

    @property
    def priority(self) -> int: ...
    @property
    def args(self) -> list[Any]: ...
    @property
    def kwargs(self) -> dict[str, Any]: ...
    @property
    def key(self) -> str | None: ...
    @property
    def run_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def traceback(self) -> str | None: ...
    @property
    def cancel_requested(self) -> bool: ...
    @property
    def attempts(self) -> Sequence[AttemptRecord]: ...
    @property
    def prior_attempts(self) -> int: ...
    @property
    def progress(self) -> dict[str, Any] | None: ...
    @property
    def trace_id(self) -> str | None: ...

    def to_dict(self, *, with_attempts: bool = ...) -> dict[str, Any]: ...


def first_line(text: str | None, limit: int = ERROR_EXCERPT) -> str:
    """The first line of ``text``, ending in an ellipsis past ``limit`` characters."""
    if not text or not text.strip():
        return ""
    line = text.strip().splitlines()[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def state_text(state: str) -> Text:
    """A state word in its colour."""
    return Text(state, style=STATE_STYLES.get(state, ""))


@dataclass(frozen=True)
class Column:
    """A listing column and how it gives way when the terminal is narrow.

    ``drop`` orders the columns left out when not all fit (1 goes first; 0 never goes);
    a ``wrap`` column may fold onto several lines down to ``min_width``.
    """

    name: str
    drop: int = 0
    wrap: bool = False
    min_width: int = 0
    justify: str = "left"


def _cell_width(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def _table_width(widths: Sequence[int]) -> int:
    """The width of a borderless table with these column widths (two spaces between columns)."""
    return sum(widths) + 2 * max(0, len(widths) - 1)


def fitted_table(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int
) -> tuple[Table, list[str]]:
    """A borderless table of ``rows`` that fits ``width``; also the names of the columns left out.

    Columns keep their full width when they can; otherwise wrapping columns narrow to their
    minimum, then droppable columns are left out (lowest ``drop`` first) until the rest fit,
    and a kept wrapping column may narrow further if even that is not enough. Columns that
    neither wrap nor drop (ids) are never shortened. Room left over goes first to the kept
    wrapping columns that never drop (the error), then to the others.
    """
    natural = [max([cell_len(c.name), *(_cell_width(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    minimum = [min(natural[i], c.min_width) if c.wrap else natural[i] for i, c in enumerate(columns)]
    kept = list(range(len(columns)))
    droppable = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: columns[i].drop)
    while droppable and _table_width([minimum[i] for i in kept]) > width:
        kept.remove(droppable.pop(0))
    widths = {i: minimum[i] for i in kept}
    spare = width - _table_width(list(widths.values()))
    wrapping = sorted(
        (i for i in kept if columns[i].wrap), key=lambda i: (columns[i].drop != 0, -columns[i].drop)
    )
    for i in wrapping:
        # Too narrow even for the minimums (spare < 0): the kept wrapping columns give way.
        grow = min(spare, natural[i] - widths[i]) if spare >= 0 else max(spare, MIN_WRAP_WIDTH - widths[i])
        widths[i] += grow
        spare -= grow
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    for i in kept:
        c = columns[i]
        table.add_column(
            c.name,
            width=widths[i],
            no_wrap=not c.wrap,
            overflow="fold",
            justify=c.justify,  # type: ignore[arg-type]
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table, [columns[i].name for i in range(len(columns)) if i not in kept]


def _hidden_note(hidden: list[str]) -> str:
    if not hidden:
        return ""
    return f"; not shown at this width: {', '.join(hidden)} (widen the terminal, or use --json)"


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


def queues_table(queues: Sequence[dict[str, Any]]) -> Table:
    """Each queue's limits and how it stands against them (``conveyor queues list``)."""
    table = Table(title="Queues", title_justify="left")
    for name in (
        "queue",
        "state",
        "running",
        "concurrency",
        "rate",
        "group conc.",
        "group rate",
        "busiest groups",
    ):
        table.add_column(name, justify="right" if name == "running" else "left")
    for q in queues:
        state = "paused" if q["paused"] else "throttled" if q["throttled"] else "open"
        groups = ", ".join(f"{g['group']} ({g['processing']}+{g['waiting']})" for g in q["busiest_groups"])
        table.add_row(
            q["name"],
            Text(state, style="yellow" if state != "open" else "green"),
            str(q["processing"]),
            "-" if q["concurrency"] is None else str(q["concurrency"]),
            q["rate_limit"] or "-",
            "-" if q["group_concurrency"] is None else str(q["group_concurrency"]),
            q["group_rate_limit"] or "-",
            groups or "-",
        )
    table.caption = "busiest groups: processing+waiting"
    table.caption_justify = "left"
    return table


#: The job listing's columns; the failure table drops ``queue`` first and keeps ``error``.
JOB_COLUMNS = (
    Column("id"),
    Column("task", drop=5, wrap=True, min_width=12),
    Column("queue", drop=1, wrap=True, min_width=8),
    Column("status"),
    Column("attempt", drop=3, justify="right"),
    Column("created", drop=2),
    Column("error", wrap=True, min_width=24),
)


def jobs_table(
    records: Sequence[ListedJob], title: str, total: int | None = None, width: int | None = None
) -> Table:
    """A job listing that fits ``width`` (default: the console's); the failure table for failed jobs."""
    rows = [
        (
            r.id,
            r.task,
            r.queue,
            state_text(r.state),
            f"{r.attempt}/{r.max_attempts}",
            local_time(r.created_at),
            first_line(r.error),
        )
        for r in records
    ]
    table, hidden = fitted_table(title, JOB_COLUMNS, rows, width or console().width)
    if total is not None:
        table.caption = f"{len(records)} of {total}{_hidden_note(hidden)}"
    elif hidden:
        table.caption = _hidden_note(hidden).removeprefix("; ")
    table.caption_justify = "left"
    return table


#: A job's attempts: the outcome and error stay, the start time goes first.
ATTEMPT_COLUMNS = (
    Column("#", justify="right"),
    Column("worker", drop=2, wrap=True, min_width=10),
    Column("started", drop=1),
    Column("finished", drop=3),
    Column("outcome"),
    Column("ran with", drop=4, wrap=True, min_width=16),
    Column("error", wrap=True, min_width=24),
)


def attempts_table(attempts: Sequence[AttemptRecord], width: int) -> Table:
    """A job's attempt records, fitted to ``width``."""
    rows = [
        (
            str(a.attempt),
            a.worker or "-",
            local_time(a.started_at),
            local_time(a.finished_at),
            state_text(a.outcome),
            ran_with(a.args, a.kwargs),
            first_line(a.error),
        )
        for a in attempts
    ]
    table, hidden = fitted_table("attempts", ATTEMPT_COLUMNS, rows, width)
    if hidden:
        table.caption = _hidden_note(hidden).removeprefix("; ")
        table.caption_justify = "left"
    return table


def attempt_of(record: ShownJob) -> str:
    """``3/4``; after a resubmit ``5/7 (2 before the resubmit)``: numbers go on, the budget restarts."""
    prior = record.prior_attempts
    if not prior:
        return f"{record.attempt}/{record.max_attempts}"
    return f"{record.attempt}/{prior + record.max_attempts} ({prior} before the resubmit)"


def ran_with(args: list[Any] | None, kwargs: dict[str, Any] | None) -> str:
    """The arguments an attempt ran with, as a call's argument list; ``-`` when not recorded."""
    if args is None and kwargs is None:
        return "-"
    parts = [repr(a) for a in args or ()] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return first_line(", ".join(parts))


def job_panel(record: ShownJob, width: int | None = None) -> Panel:
    """Everything about one job, with its attempts, fitted to ``width`` (default: the console's)."""
    inner = (width or console().width) - PANEL_FRAME
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold", no_wrap=True)
    info.add_column(overflow="fold")
    result = record.to_dict(with_attempts=False).get("result")  # Job.result is the waiting method
    rows: list[tuple[str, Any]] = [
        ("id", record.id),
        ("task", record.task),
        ("queue", record.queue),
        ("status", state_text(record.state)),
        ("attempt", attempt_of(record)),
        ("priority", str(record.priority)),
        ("args", repr(record.args)),
        ("kwargs", repr(record.kwargs)),
        ("key", record.key or "-"),
        ("created", local_time(record.created_at)),
        ("run at", local_time(record.run_at)),
        ("finished", local_time(record.finished_at)),
        ("result", "-" if result is None else repr(result)),
        ("error", record.error or "-"),
    ]
    if record.cancel_requested:
        rows.append(("cancel", "requested"))
    if record.progress is not None:
        rows.append(("progress", progress_text(record.progress)))
    if record.trace_id is not None:
        rows.append(("trace id", record.trace_id))
    for name, value in rows:
        info.add_row(name, value)
    parts: list[Any] = [info, attempts_table(record.attempts, inner)]
    if record.traceback:
        parts.append(Panel(record.traceback.rstrip(), title="traceback", border_style="red"))
    return Panel(Group(*parts), title=f"job {record.id}")


def progress_text(progress: dict[str, Any]) -> str:
    """``40% 40 of 100 rows (09:30:01)``: a job's reported progress in one line."""
    fraction, message = progress.get("fraction"), progress.get("message")
    parts = [] if fraction is None else [f"{fraction:.0%}"]
    if message:
        parts.append(str(message))
    updated = progress.get("updated_at")
    if updated:
        parts.append(f"({local_time(datetime.fromisoformat(updated))})")
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
            local_time(datetime.fromisoformat(w["started_at"])),
            local_time(datetime.fromisoformat(w["last_seen_at"])),
            w["version"],
        )
    return table


def console(stderr: bool = False) -> Console:
    """The console the CLI prints to: the terminal's width, else COLUMNS, else wide for pipes."""
    probe = Console(stderr=stderr)
    wide = not probe.is_terminal and not os.environ.get("COLUMNS", "").isdigit()
    return Console(stderr=stderr, highlight=False, width=PIPE_WIDTH if wide else None)
