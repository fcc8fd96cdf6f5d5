"""The CLI end to end (SQLite): human and --json output, and one clear line for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import conveyor
from conveyor.cli import main

APP_SOURCE = textwrap.dedent(
    """
    import conveyor

    app = conveyor.App()

    @app.task(queue="mail", max_attempts=1)
    def send(to, ok=True):
        if not ok:
            raise ConnectionError("smtp down")
        return "sent " + to
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with ``tasks.py`` defining ``app``, as the current directory."""
    (tmp_path / "tasks.py").write_text(APP_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVEYOR_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tasks", None)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_enqueue_process_stats_and_jobs_commands(project: Path) -> None:
    code, out, _ = run("enqueue", "tasks:app", "send", "--args", '["a@example.com"]', "--json")
    assert code == 0, out
    job_id = json.loads(out)["id"]
    code, out, _ = run(
        "enqueue", "tasks:app", "send", "--args", '["b@example.com"]', "--kwargs", '{"ok": false}'
    )
    assert code == 0 and out.strip().endswith("pending")
    failed_id = out.split()[0]
    code, out, _ = run("process", "tasks:app", "--batch-size", "10", "--json")
    assert code == 0 and json.loads(out) == {
        "processed": 2,
        "completed": 1,
        "failed": 1,
        "retried": 0,
        "cancelled": 0,
    }
    code, out, _ = run("stats", "--json")
    stats = json.loads(out)
    assert stats["counts"]["completed"] == 1 and stats["queues"]["mail"]["failed"] == 1
    code, out, _ = run("stats")
    assert code == 0 and "Queue stats" in out and "mail" in out
    code, out, _ = run("jobs", "list", "--status", "failed", "--json")
    listing = json.loads(out)
    assert listing["total"] == 1 and listing["items"][0]["id"] == failed_id
    assert listing["items"][0]["error"] == "ConnectionError: smtp down"
    code, out, _ = run("jobs", "list", "--status", "failed")
    assert "Failure table" in out and failed_id in out
    code, out, _ = run("jobs", "show", job_id, "--json")
    assert json.loads(out)["result"] == "sent a@example.com"
    code, out, _ = run("jobs", "show", failed_id)
    assert code == 0 and "smtp down" in out and "traceback" in out
    code, out, _ = run("jobs", "retry", failed_id, "--kwargs", '{"ok": true}', "--json")
    assert json.loads(out) == {"id": failed_id, "status": "pending"}
    run("process", "tasks:app")
    assert json.loads(run("jobs", "show", failed_id, "--json")[1])["status"] == "completed"
    code, out, _ = run("jobs", "purge", "--status", "completed", "--older-than", "0s", "--json")
    assert json.loads(out) == {"purged": 2}


def test_cancel_delete_and_retry_by_status(project: Path) -> None:
    ids = [
        json.loads(
            run("enqueue", "tasks:app", "send", "--args", f'["u{i}"]', "--kwargs", '{"ok": false}', "--json")[
                1
            ]
        )["id"]
        for i in range(3)
    ]
    code, out, _ = run("jobs", "cancel", ids[0], "--json")
    assert json.loads(out)["status"] == "cancelled"
    code, out, _ = run("jobs", "delete", ids[0])
    assert code == 0 and "deleted" in out
    run("process", "tasks:app")
    code, out, _ = run("jobs", "retry", "--status", "failed", "--json")
    assert json.loads(out) == {"resubmitted": 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("enqueue", "tasks:app", "nope"), "unknown task 'nope'"),
        (("enqueue", "tasks:app", "send", "--args", "[1,"), "not valid JSON"),
        (("enqueue", "tasks:app", "send", "--args", '{"a": 1}'), "must be a JSON array"),
        (("enqueue", "tasks:app", "send", "--kwargs", "[1]"), "must be a JSON object"),
        (("enqueue", "tasks:app", "send", "--queue", "bad queue"), "invalid queue name 'bad queue'"),
        (("enqueue", "tasks", "send"), "APP must be module:attribute"),
        (("enqueue", "nosuchmodule:app", "send"), "cannot import module 'nosuchmodule'"),
        (("enqueue", "tasks:nothing", "send"), "has no attribute 'nothing'"),
        (("enqueue", "tasks:send", "send"), "not a conveyor.App"),
        (("jobs", "list", "--status", "bogus"), "'bogus' is not one of"),
        (("jobs", "list", "--queue", "x;drop table"), "invalid queue name"),
        (("jobs", "show", "doesnotexist"), "no job with id 'doesnotexist'"),
        (("jobs", "purge", "--status", "pending"), "'pending' is not one of"),
        (("jobs", "purge", "--status", "completed", "--older-than", "7 weeks"), "invalid duration"),
        (("stats", "--url", "mysql://x"), "unknown backend URL 'mysql://x'"),
        (("stats", "--url", "sqlite:///no/such/dir/x.db"), "does not exist"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(
    project: Path, args: tuple[str, ...], message: str
) -> None:
    keep = json.loads(run("enqueue", "tasks:app", "send", "--args", '["keep"]', "--json")[1])["id"]
    before = json.loads(run("stats", "--json")[1])["counts"]
    code, out, err = run(*args)
    assert code != 0
    text = out + err
    assert message in text, text
    assert "Traceback" not in text
    assert json.loads(run("stats", "--json")[1])["counts"] == before
    assert json.loads(run("jobs", "show", keep, "--json")[1])["args"] == ["keep"]


def test_retry_of_a_completed_job_is_refused(project: Path) -> None:
    job_id = json.loads(run("enqueue", "tasks:app", "send", "--args", '["x"]', "--json")[1])["id"]
    run("process", "tasks:app")
    code, _out, err = run("jobs", "retry", job_id)
    assert code == 1 and "only failed or cancelled jobs can be resubmitted" in err


def test_real_entry_point_prints_one_line_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "CONVEYOR_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    existing = conveyor.App(env["CONVEYOR_URL"])  # jobs show reads an existing database only
    existing.backend.migrate()
    existing.close()
    proc = subprocess.run(
        [sys.executable, "-m", "conveyor", "jobs", "show", "missing"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: no job with id 'missing'"


def test_migrate_and_demo(project: Path) -> None:
    code, out, _ = run("migrate", "tasks:app", "--json")
    assert code == 0 and json.loads(out)["migrated"] is True
    code, out, _ = run("demo", "--jobs", "40", "--path", str(project / "demo.db"))
    assert code == 0, out
    assert "Queue stats" in out and "Failure table" in out and "replayed job" in out
    app = conveyor.App(f"sqlite:///{project / 'demo.db'}")
    counts = app.stats()["counts"]
    assert counts["pending"] == counts["processing"] == counts["retry"] == 0
    assert counts["failed"] >= 1 and counts["completed"] >= 30
    app.close()


def test_inconsistent_lease_settings_are_refused(project: Path) -> None:
    with pytest.raises(conveyor.ConfigurationError, match="not well inside the lease"):
        conveyor.App(lease=3, heartbeat=2)
    code, _out, err = run("worker", "tasks:app", "--lease", "0")
    assert code == 1 and "lease must be > 0" in err


def test_schedules_commands(project: Path) -> None:
    code, out, err = run(
        "schedules", "add", "nightly", "--app", "tasks:app", "--task", "send",
        "--cron", "0 2 * * *", "--tz", "Europe/Berlin", "--args", '["ops@example.com"]', "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["cron"] == "0 2 * * *" and json.loads(out)["args"] == ["ops@example.com"]
    code, out, _ = run("schedules", "pause", "nightly", "--json")
    assert code == 0 and json.loads(out)["paused"] is True
    code, out, _ = run("schedules", "resume", "nightly")
    assert code == 0 and "nightly: send cron '0 2 * * *' Europe/Berlin, next" in out
    code, out, _ = run("schedules", "run", "nightly", "--app", "tasks:app", "--json")
    assert code == 0 and json.loads(out)["status"] == "pending"
    code, out, _ = run("schedules", "list", "--json")
    assert [s["name"] for s in json.loads(out)] == ["nightly"] and json.loads(out)[0]["last_job_id"]
    code, out, _ = run("schedules", "remove", "nightly")
    assert code == 0 and "removed schedule nightly" in out
    code, _, err = run("schedules", "remove", "nightly")
    assert code == 1 and "no schedule named 'nightly'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--cron", "0 25 * * *"), "invalid cron expression '0 25 * * *'"),
        (("--cron", "0 2 * * *", "--tz", "Moon/Base"), "unknown time zone 'Moon/Base'"),
        (("--every", "5m", "--task", "nope"), "unknown task 'nope'"),
    ],
)
def test_schedules_add_refuses_bad_input(project: Path, args: tuple[str, ...], message: str) -> None:
    task = () if "--task" in args else ("--task", "send")
    code, _, err = run("schedules", "add", "bad", "--app", "tasks:app", *task, *args)
    assert code == 1 and message in err
    assert json.loads(run("schedules", "list", "--json")[1]) == []


def test_alerts_commands(project: Path) -> None:
    code, out, err = run(
        "alerts",
        "add",
        "ops",
        "--webhook",
        "https://hooks.example.com/x",
        "--threshold",
        "5",
        "--window",
        "10m",
    )
    assert code == 0 and "alert ops: 5 failed in 10m" in out, err
    code, _, err = run(
        "alerts", "add", "neg", "--webhook", "https://x/", "--threshold", "5", "--window", "-1m"
    )
    assert code == 1 and "invalid duration '-1m'" in err
    code, out, _ = run("alerts", "list", "--json")
    assert [(a["name"], a["threshold"], a["window"]) for a in json.loads(out)] == [("ops", 5, "10m")]
    assert run("alerts", "remove", "ops")[0] == 0
    code, _, err = run("alerts", "remove", "ops")
    assert code == 1 and "no alert named 'ops'" in err


def test_worker_no_schedules_flag_is_offered() -> None:
    code, out, _ = run("worker", "--help")
    assert code == 0 and "--no-schedules" in out
