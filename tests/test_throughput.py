"""Throughput's engine-neutral rules (backends/throughput.py), and the window's edge on SQLite.

The conformance suite checks every engine against jobs it runs now; here the window's
first minute is checked against finish times set on purpose, which only an engine
whose rows a test can write (SQLite) allows.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

import conveyor
from conveyor.backends.throughput import (
    MAX_MINUTES,
    check_minutes,
    first_minute,
    minute_of,
    series,
    window_since,
)
from conveyor.errors import InvalidWindow
from conveyor.testing.helpers import wait_for


def test_the_window_is_whole_minutes_ending_with_the_current_one() -> None:
    now = 1_800_000_000.0 + 59.9  # 59.9 s into a minute
    assert now - window_since(now, 1) == pytest.approx(59.9)
    assert first_minute(now, 60) == minute_of(now) - 59
    assert window_since(now, 60) % 60 == 0


def test_series_is_dense_and_leaves_out_minutes_before_the_window_and_other_kinds() -> None:
    now = 1_800_000_030.0
    first = first_minute(now, 3)
    rows = [
        (first - 1, "completed", 100),  # the minute before the window: left out
        (first, "completed", 2),
        (first, "failed", 1),
        (first + 2, "completed", 5),
        (first + 2, "cancelled", 9),  # not a kind throughput counts
        (first + 3, "failed", 7),  # after now: cannot happen, left out all the same
    ]
    window = series(now, 3, "mail", rows)
    assert [(m.completed, m.failed) for m in window.minutes] == [(2, 1), (0, 0), (5, 0)]
    assert [m.start for m in window.minutes] == [first * 60.0, (first + 1) * 60.0, (first + 2) * 60.0]
    assert (window.completed, window.failed, window.queue) == (7, 1, "mail")
    body = window.to_dict()
    assert body["minutes"][0]["start"].endswith("+00:00") and body["completed"] == 7


@pytest.mark.parametrize("bad", [0, -5, MAX_MINUTES + 1, 2.0, math.inf, None, False, "5"])
def test_check_minutes_names_the_bounds(bad: object) -> None:
    with pytest.raises(InvalidWindow, match=r"from 1 to 1440, got"):
        check_minutes(bad)


def test_sqlite_counts_a_job_by_its_finished_at_and_never_before_the_windows_first_minute(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edge.db"
    app = conveyor.App(f"sqlite:///{path}")
    app.backend.migrate()
    # Start early in a minute, so the window cannot move on between writing and reading.
    wait_for(lambda: app.backend.now() % 60 < 45, timeout=20)
    now = app.backend.now()
    since = window_since(now, 60)
    rows = [
        ("inside-first", "completed", since),  # the first second of the window
        ("inside-late", "failed", since + 600.5),
        ("outside", "completed", since - 0.001),  # a millisecond before it
        ("long-ago", "failed", since - 86400),
    ]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO conveyor_jobs (id, task, queue, state, payload, priority, run_at, created_at,"
            " finished_at, attempt, max_attempts) VALUES (?, 't', 'q', ?, '{}', 0, ?, ?, ?, 1, 1)",
            [(job_id, state, at, at, at) for job_id, state, at in rows],
        )
    window = app.backend.throughput(60)
    assert (window.completed, window.failed) == (1, 1)
    assert (window.minutes[0].completed, window.minutes[10].failed) == (1, 1)
    wider = app.backend.throughput(61)
    assert (wider.completed, wider.failed) == (2, 1)
    assert app.backend.throughput(MAX_MINUTES).failed == 1, "a day ago is just outside a day's window"
    app.close()
