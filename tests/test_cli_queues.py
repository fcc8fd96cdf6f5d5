"""``conveyor queues list|set|pause|resume`` and ``jobs list --group`` on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import conveyor
from conveyor.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_queues_set_pause_resume_and_list_as_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    app = conveyor.App(url)
    app.declare("work")
    app.enqueue("work", group="tenant-1")
    code, out = run(
        "queues", "set", "default", "--concurrency", "3", "--rate-limit", "10/s", "--url", url, "--json"
    )
    assert code == 0, out
    assert json.loads(out)["concurrency"] == 3 and json.loads(out)["rate_limit"] == "10/s"
    assert json.loads(run("queues", "pause", "default", "--url", url, "--json")[1])["paused"] is True
    code, out = run("queues", "list", "--url", url, "--json")
    (queue,) = json.loads(out)["items"]
    assert queue["paused"] is True and queue["busiest_groups"] == [
        {"group": "tenant-1", "waiting": 1, "processing": 0}
    ]
    assert json.loads(run("queues", "resume", "default", "--url", url, "--json")[1])["paused"] is False
    code, out = run("queues", "set", "default", "--rate-limit", "none", "--url", url, "--json")
    assert json.loads(out)["rate_limit"] is None and json.loads(out)["concurrency"] == 3
    code, out = run("jobs", "list", "--group", "tenant-1", "--url", url, "--json")
    assert json.loads(out)["total"] == 1
    app.close()


def test_bad_limits_exit_non_zero_naming_the_value_and_change_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    conveyor.App(url).configure_queue("default", concurrency=2)
    for option, value in (("--concurrency", "0"), ("--concurrency", "-4"), ("--rate-limit", "ten/s"),
                          ("--rate-limit", "5/fortnight"), ("--group-concurrency", "many")):  # fmt: skip
        code, out = run("queues", "set", "default", option, value, "--url", url)
        assert code != 0 and value in out, (option, value, out)
    assert conveyor.App(url).queue("default")["concurrency"] == 2
