"""The CLI as a new user meets it: narrow terminals, errors in their own code, a backend that
is not there, time zones, the wrong directory, and the small things (usage, help, --json)."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
from click.testing import CliRunner

import conveyor
from conveyor.cli import main
from conveyor.cli_backend import mask_url, wait_for_backend
from conveyor.errors import BackendUnavailable
from conveyor.render import local_time
from real_command import command_env, conveyor_command, run_conveyor

LONG_TASK = "billing.invoices.send_overdue_reminder_email"
APP_SOURCE = textwrap.dedent(
    f"""
    import conveyor

    app = conveyor.App()

    @app.task(name={LONG_TASK!r}, queue="billing-reminders", max_attempts=1)
    def remind(customer):
        raise OSError("smtp down, the relay answered 421 too many connections from this host")

    @app.task(queue="mail")
    def send(to):
        return "sent " + to
    """
)
REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: A loopback port nothing listens on: connections are refused at once.
CLOSED_PORT = 1


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1.0):
            return True
    except OSError:
        return False


def run(*args: str, columns: int | None = None) -> tuple[int, str, str]:
    env = {"COLUMNS": str(columns)} if columns else None
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with ``tasks.py`` and a database of three failed jobs, as the current directory."""
    (tmp_path / "tasks.py").write_text(APP_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVEYOR_URL", f"sqlite:///{tmp_path / 'edges.db'}")
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tasks", None)
    for customer in range(3):
        assert run("enqueue", "tasks:app", LONG_TASK, "--args", f"[{customer}]")[0] == 0
    assert run("process", "tasks:app")[0] == 0
    return tmp_path


def failed_ids() -> list[str]:
    listing = json.loads(run("jobs", "list", "--status", "failed", "--json")[1])
    return [item["id"] for item in listing["items"]]


# -- 1. the failure table in any terminal ------------------------------------------------


@pytest.mark.parametrize("columns", [60, 80, 120, 200])
def test_failure_table_fits_the_terminal_and_never_cuts_an_id(project: Path, columns: int) -> None:
    ids = failed_ids()
    assert len(ids) == 3
    code, out, _ = run("jobs", "list", "--status", "failed", columns=columns)
    assert code == 0, out
    assert out.startswith("backend sqlite:///")  # a path, never cut: the terminal wraps it
    lines = out.splitlines()[1:]
    assert all(len(line) <= columns for line in lines), [len(line) for line in lines]
    for job_id in ids:
        assert job_id in out  # whole, on one line: copy it into `conveyor jobs show`
    header = next(line for line in lines if line.startswith("id "))
    assert "…" not in header
    assert {"id", "status", "error"} <= set(header.split())
    assert "smtp" in out  # the error column is kept at every width
    if columns >= 200:
        assert {"task", "queue", "attempt", "created"} <= set(header.split())
        assert "OSError: smtp down, the relay answered 421 too many connections from this host" in out
        assert "not shown" not in out
    if columns == 60:
        assert "not shown at this width" in out  # the caption says what is missing
    code, out, _ = run("jobs", "show", ids[0], columns=columns)
    assert code == 0 and ids[0] in out
    assert all(len(line) <= columns for line in out.splitlines()[1:])


# -- 2. an error in the user's own code ----------------------------------------------------

BROKEN_APP = textwrap.dedent(
    """\
    import conveyor
    settings = {"retries": 3}
    app = conveyor.App(lease=settings["timeout"])
    """
)


def test_an_error_in_user_code_is_one_line_with_type_and_frame(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN_APP)
    proc = run_conveyor("worker", "broken:app", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: KeyError: 'timeout'")
    assert "broken.py:3" in lines[0] and "--traceback" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [("--traceback", "worker", "broken:app"), ("worker", "broken:app", "--log-level", "debug")],
)
def test_the_whole_traceback_when_asked(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "broken.py").write_text(BROKEN_APP)
    proc = run_conveyor(*args, cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert 'broken.py", line 3' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "Error: KeyError: 'timeout' (at broken.py:3)"


# -- 3. a backend that is not there ----------------------------------------------------------


def test_mask_url_hides_passwords() -> None:
    assert mask_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("postgresql://u:pw@h/db?password=x&sslmode=require") == (
        "postgresql://u:***@h/db?password=***&sslmode=require"
    )
    assert mask_url("sqlite:///conveyor.db") == "sqlite:///conveyor.db"


@pytest.mark.parametrize("command", ["stats", "serve"])
def test_an_unreachable_redis_is_one_line_naming_it(tmp_path: Path, command: str) -> None:
    pytest.importorskip("redis")
    (tmp_path / "tasks.py").write_text(APP_SOURCE)
    url = f"redis://:hunter2@127.0.0.1:{CLOSED_PORT}/0"
    args = (
        ("stats", "--url", url) if command == "stats" else ("serve", "tasks:app", "--url", url, "--port", "0")
    )
    proc = run_conveyor(*args, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"Error: cannot reach the backend redis://:***@127.0.0.1:{CLOSED_PORT}/0: ")
    assert "Connection refused" in lines[0] and "hunter2" not in proc.stderr


def test_a_missing_postgres_database_fails_fast_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    if not reachable(POSTGRES_URL):
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    parts = urlsplit(POSTGRES_URL)
    url = parts._replace(path="/conveyor_no_such_database", query="").geturl()
    started = time.monotonic()
    proc = run_conveyor("jobs", "list", "--url", url, cwd=tmp_path)
    assert time.monotonic() - started < 4  # not the pool's 5 s of retries
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert 'database "conveyor_no_such_database" does not exist' in lines[0]
    assert mask_url(url) in lines[0]
    assert "keepalives" not in lines[0] and "connect_timeout" not in lines[0]  # options nobody typed


def test_a_worker_waits_for_its_backend_one_line_per_attempt(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    (tmp_path / "tasks.py").write_text(APP_SOURCE)
    url = f"redis://127.0.0.1:{CLOSED_PORT}/0"
    proc = subprocess.Popen(
        [*conveyor_command(), "worker", "tasks:app", "--url", url],
        cwd=tmp_path,
        env=command_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)  # attempts at 0 s, 1 s (then the next after 2 s more)
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    lines = err.strip().splitlines()
    assert len(lines) >= 2, err
    assert f"cannot reach the backend {url}" in lines[0] and "retrying with backoff" in lines[0]
    assert "attempt 2: cannot reach the backend" in lines[1]
    assert "Traceback" not in err and "serving" not in err


def test_wait_for_backend_backs_off_and_logs_each_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = conveyor.App(f"sqlite:///{tmp_path / 'w.db'}")
    failures = iter([BackendUnavailable("down")] * 7)

    def flaky_get(job_id: str) -> None:
        error = next(failures, None)
        if error is not None:
            raise error

    app.backend.get = flaky_get  # type: ignore[method-assign]
    sleeps: list[float] = []
    caplog.set_level(logging.INFO, logger="conveyor.cli")
    wait_for_backend(app, sleep=sleeps.append, max_wait=30)
    assert sleeps == [1, 2, 4, 8, 16, 30, 30]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 8 and "retrying with backoff" in messages[0]
    assert messages[-1].startswith("backend sqlite:///") and "after 7 failed attempt(s)" in messages[-1]
    with pytest.raises(BackendUnavailable):
        failures = iter([BackendUnavailable("down")])
        wait_for_backend(app, retry=False)
    app.close()


# -- 4. one rule for times ---------------------------------------------------------------------


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_human_times_are_local_with_the_zone(new_york: None) -> None:
    assert local_time(datetime(2024, 1, 15, 12, 0, tzinfo=UTC)) == "2024-01-15 07:00:00 EST"
    assert local_time(datetime(2024, 7, 15, 12, 0, tzinfo=UTC)) == "2024-07-15 08:00:00 EDT"


def test_tables_show_local_time_and_json_shows_utc(project: Path, new_york: None) -> None:
    job_id = failed_ids()[0]
    created = json.loads(run("jobs", "show", job_id, "--json")[1])["created_at"]
    assert created.endswith("+00:00")
    local = datetime.fromisoformat(created).astimezone()
    _, out, _ = run("jobs", "list", "--status", "failed", columns=200)
    assert f"{local:%Y-%m-%d %H:%M:%S} {local:%Z}" in out
    assert local.strftime("%Z") in ("EST", "EDT")


def test_worker_logs_show_local_time_with_zone_or_json_in_utc(project: Path) -> None:
    env = {"TZ": "America/New_York", "CONVEYOR_URL": os.environ["CONVEYOR_URL"]}
    proc = run_conveyor("worker", "tasks:app", "--burst", cwd=project, **env)
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} E[SD]T INFO conveyor\.worker: worker .* serving", first
    )
    proc = run_conveyor("worker", "tasks:app", "--burst", "--json", cwd=project, **env)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    assert records and all(r["time"].endswith("+00:00") for r in records)
    assert any("serving" in r["message"] and r["level"] == "info" for r in records)


# -- 5. the wrong directory ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [("stats",), ("jobs", "list"), ("jobs", "show", "x"), ("jobs", "retry", "x")]
)
def test_read_only_commands_never_create_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    code, _out, err = run(*args)
    assert code == 1
    assert f"no Conveyor database at {tmp_path.resolve() / 'conveyor.db'}" in err
    assert "from the default" in err and "--url" in err and "CONVEYOR_URL" in err
    assert list(tmp_path.iterdir()) == []


def test_human_output_names_the_backend(project: Path) -> None:
    for args in (("stats",), ("jobs", "list"), ("jobs", "show", failed_ids()[0])):
        code, out, _ = run(*args)
        assert code == 0
        assert out.splitlines()[0] == f"backend {os.environ['CONVEYOR_URL']}"


# -- 7. small ones -----------------------------------------------------------------------------------


def test_retry_without_arguments_is_a_usage_error(project: Path) -> None:
    code, _out, err = run("jobs", "retry")
    assert code == 2
    assert "Usage: main jobs retry" in err and "give a job ID or --status" in err


def test_help_texts_carry_no_markup() -> None:
    def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        for name, command in group.commands.items():
            yield (*prefix, name)
            if isinstance(command, click.Group):
                yield from commands(command, (*prefix, name))

    for path in [(), *commands(main)]:
        code, out, _ = run(*path, "--help")
        assert code == 0, path
        assert "``" not in out and ":class:" not in out, (path, out)


def test_redis_server_warnings_are_left_to_the_worker(tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    if not reachable(REDIS_URL):
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    (tmp_path / "tasks.py").write_text(APP_SOURCE)
    prefix = "t" + secrets.token_hex(5)
    url = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        warns = client.config_get("appendonly").get("appendonly") == "no"
        for args in (("stats",), ("jobs", "list"), ("jobs", "purge", "--status", "completed")):
            proc = run_conveyor(*args, "--url", url, cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr
            assert "Redis" not in proc.stderr, (args, proc.stderr)
        proc = run_conveyor("worker", "tasks:app", "--burst", "--url", url, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        said = [
            line
            for line in proc.stderr.splitlines()
            if "Redis persists only" in line or "no persistence" in line
        ]
        assert len(said) == (1 if warns else 0), proc.stderr
    finally:
        keys = list(client.scan_iter(match=f"{{{prefix}}}*"))
        if keys:
            client.delete(*keys)
        client.close()


# -- 6. the demo's next step ----------------------------------------------------------------------


def test_the_demo_suggests_a_command_that_runs_without_an_active_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no virtualenv on PATH, as after `make demo`
    code, out, _ = run("demo", "--jobs", "40", "--path", str(tmp_path / "demo.db"))
    assert code == 0, out
    suggested = out.strip().splitlines()[-1].strip()
    assert not suggested.startswith("conveyor ")  # the shell would answer: command not found
    args = shlex.split(suggested)
    proc = subprocess.run(
        args, capture_output=True, text=True, cwd=tmp_path, env=command_env(PATH="/usr/bin:/bin")
    )
    assert proc.returncode == 0, proc.stderr
    assert "Failure table" in proc.stdout
