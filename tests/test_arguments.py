"""Arguments are bound to the task's signature at enqueue, and again before a worker calls it.

Python, CLI and HTTP producers are refused with InvalidArguments (HTTP 422) when the
call could not bind; a worker that meets arguments that cannot bind fails the job at
once, while a TypeError raised inside the task is retried like any other error.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import conveyor
from conveyor.arguments import MAX_SHAPES, ArgumentCheck
from conveyor.backoff import fixed
from conveyor.cli import main
from conveyor.server import create_app
from conveyor.testing import drain
from test_http_api import serving

KEY = "arguments-test-key-0123456789"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[conveyor.App]:
    """An App on a fresh in-process store with tasks of every kind of signature."""
    application = conveyor.App(f"memory://arguments-{tmp_path.name}")

    @application.task()
    def send_email(to: str, subject: str) -> str:
        return f"{to}:{subject}"

    @application.task()
    def with_defaults(a: int, b: int = 2, c: int = 3) -> int:
        return a + b + c

    @application.task()
    def star_args(first: str, *rest: str) -> int:
        return len(rest)

    @application.task()
    def star_kwargs(name: str, **extra: Any) -> int:
        return len(extra)

    @application.task()
    def keyword_only(a: int, *, flag: bool, level: int = 0) -> int:
        return a

    @application.task()
    def positional_only(a: int, b: int, /) -> int:
        return a - b

    yield application
    application.close()


ACCEPTED: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("send_email", ["a@example.com", "Welcome"], {}),
    ("send_email", ["a@example.com"], {"subject": "Welcome"}),
    ("send_email", [], {"to": "a@example.com", "subject": "Welcome"}),
    ("with_defaults", [1], {}),
    ("with_defaults", [1, 2, 3], {}),
    ("with_defaults", [1], {"c": 9}),
    ("star_args", ["x"], {}),
    ("star_args", ["x", "y", "z"], {}),
    ("star_kwargs", ["n"], {"anything": 1, "goes": 2}),
    ("star_kwargs", [], {"name": "n"}),
    ("keyword_only", [1], {"flag": True}),
    ("keyword_only", [], {"a": 1, "flag": False, "level": 2}),
    ("positional_only", [1, 2], {}),
]

REFUSED: list[tuple[str, list[Any], dict[str, Any], str]] = [
    ("send_email", ["only-one-arg"], {}, "missing a required argument: 'subject'"),
    ("send_email", ["a"], {"subjct": "typo"}, "'subjct'"),
    ("send_email", ["a", "b", "c"], {}, "too many positional arguments"),
    ("send_email", ["a", "b"], {"to": "again"}, "multiple values for argument 'to'"),
    ("with_defaults", [], {}, "missing a required argument: 'a'"),
    ("with_defaults", [1, 2, 3, 4], {}, "too many positional arguments"),
    ("star_args", [], {}, "missing a required argument: 'first'"),
    ("star_kwargs", [], {"other": 1}, "missing a required argument: 'name'"),
    ("keyword_only", [1], {}, "missing a required argument: 'flag'"),
    ("keyword_only", [1, True], {}, "too many positional arguments"),
    ("positional_only", [], {"a": 1, "b": 2}, "'a'"),
]


@pytest.mark.parametrize(("task", "args", "kwargs"), ACCEPTED)
def test_arguments_that_bind_are_accepted(
    app: conveyor.App, task: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    job = app.enqueue(task, args=args, kwargs=kwargs)
    assert (job.args, job.kwargs) == (args, kwargs)


@pytest.mark.parametrize(("task", "args", "kwargs", "problem"), REFUSED)
def test_arguments_that_cannot_bind_are_refused_naming_task_parameter_and_fix(
    app: conveyor.App, task: str, args: list[Any], kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(conveyor.InvalidArguments) as caught:
        app.enqueue(task, args=args, kwargs=kwargs)
    message = str(caught.value)
    assert f"task {task!r}" in message and problem in message, message
    assert f"the task is {task}(" in message  # the signature to match
    assert "pass args in the order of its parameters" in message
    assert isinstance(caught.value, TypeError)  # what calling the function would raise
    assert app.stats()["counts"]["pending"] == 0


def test_task_enqueue_and_options_check_too(app: conveyor.App) -> None:
    send_email = app.tasks["send_email"]
    with pytest.raises(conveyor.InvalidArguments, match="'subjct'"):
        send_email.enqueue(to="a", subjct="typo")
    with pytest.raises(conveyor.InvalidArguments, match="missing a required argument: 'subject'"):
        send_email.options(priority=3).enqueue("a")
    assert send_email.options(priority=3).enqueue("a", "b").refresh().priority == 3


def test_one_bad_item_stores_none_of_the_batch(app: conveyor.App) -> None:
    items = [{"task": "send_email", "args": ["a", "b"]}] * 50 + [{"task": "send_email", "args": ["a"]}]
    with pytest.raises(conveyor.InvalidArguments, match="missing a required argument: 'subject'"):
        app.enqueue_many(items)
    assert app.jobs().total == 0


def test_declared_tasks_are_not_checked(app: conveyor.App) -> None:
    app.declare("elsewhere")
    job = app.enqueue("elsewhere", args=[1, 2, 3], kwargs={"anything": True})
    assert job.args == [1, 2, 3]


def test_resubmit_with_edited_arguments_is_checked(app: conveyor.App) -> None:
    job = app.enqueue("send_email", args=["a", "b"])
    app.cancel(job.id)
    with pytest.raises(conveyor.InvalidArguments, match="'subjct'"):
        app.resubmit(job.id, kwargs={"subjct": "x"})
    assert app.get(job.id).state == "cancelled"
    assert app.resubmit(job.id, args=["c", "d"]).state == "pending"


def test_the_verdict_is_remembered_per_call_shape() -> None:
    def fn(a: int, **extra: int) -> None: ...

    check = ArgumentCheck.of("fn", fn)
    assert check is not None
    assert check.problem([1], {}) is None and check.problem([], {}) is not None
    for n in range(MAX_SHAPES + 10):  # ever-new keyword names: still answered, memory bounded
        assert check.problem([1], {f"k{n}": n}) is None
    assert check.remembered == MAX_SHAPES
    assert ArgumentCheck.of("declared", None) is None


# -- the worker -------------------------------------------------------------------------
def test_a_worker_fails_arguments_that_cannot_bind_at_once(tmp_path: Path) -> None:
    url = f"memory://arguments-worker-{tmp_path.name}"
    producer, worker_app = conveyor.App(url), conveyor.App(url)
    producer.declare("send_email")  # a producer without the code: nothing checked
    calls: list[str] = []

    @worker_app.task(max_attempts=5, backoff=fixed(0))
    def send_email(to: str, subject: str) -> None:
        calls.append(to)

    job = producer.enqueue("send_email", args=["only-one-arg"])
    counts = drain(worker_app)
    record = worker_app.get(job.id)
    assert counts.failed == 1 and counts.retried == 0
    assert record.state == "failed" and record.attempt == 1 and calls == []
    assert record.error is not None and record.error.startswith("InvalidArguments: ")
    assert "missing a required argument: 'subject'" in record.error
    assert [a.outcome for a in record.attempts] == ["failed"]


def test_a_type_error_raised_inside_the_task_is_retried(app: conveyor.App) -> None:
    @app.task(max_attempts=3, backoff=fixed(0))
    def buggy(n: int) -> None:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    job = buggy.enqueue(1)
    drain(app, skip_retry_delays=True)
    record = app.get(job.id)
    assert record.state == "failed" and record.attempt == 3
    assert [a.outcome for a in record.attempts] == ["retry", "retry", "failed"]


# -- the edges -----------------------------------------------------------------------------
def test_http_answers_422_naming_the_argument(app: conveyor.App) -> None:
    with (
        serving(create_app(app, [KEY])) as base_url,
        httpx.Client(base_url=base_url, headers={"x-api-key": KEY}, timeout=30) as client,
    ):
        response = client.post("/api/jobs", json={"task": "send_email", "args": ["only-one-arg"]})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_arguments"
        assert "missing a required argument: 'subject'" in error["message"]
        response = client.post("/api/jobs", json={"task": "send_email", "kwargs": {"to": "a", "subjct": "x"}})
        assert response.status_code == 422 and "'subjct'" in response.json()["error"]["message"]
        ok = client.post("/api/jobs", json={"task": "send_email", "args": ["a", "b"]})
        assert ok.status_code == 201, ok.text
    assert app.jobs().total == 1


def test_cli_refuses_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "arg_tasks.py").write_text(
        textwrap.dedent(
            """
            import conveyor

            app = conveyor.App()

            @app.task()
            def send_email(to, subject):
                return to
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVEYOR_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("arg_tasks", None)
    runner = CliRunner()
    result = runner.invoke(main, ["enqueue", "arg_tasks:app", "send_email", "--args", '["only-one-arg"]'])
    assert result.exit_code != 0
    text = result.stdout + result.stderr
    assert "missing a required argument: 'subject'" in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    stored = conveyor.App(f"sqlite:///{tmp_path / 'cli.db'}")
    assert stored.jobs().total == 0
    stored.close()


# -- the resubmit history at the edges -------------------------------------------------------
def test_http_and_cli_show_what_each_attempt_ran_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    (tmp_path / "history_tasks.py").write_text(
        textwrap.dedent(
            """
            import conveyor

            app = conveyor.App()

            @app.task(max_attempts=1)
            def send(to, subject="hi"):
                if to.endswith("@bad"):
                    raise ConnectionError("no route to " + to)
                return "sent"
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVEYOR_URL", url)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("history_tasks", None)
    runner = CliRunner()
    out = runner.invoke(main, ["enqueue", "history_tasks:app", "send", "--args", '["a@bad"]', "--json"])
    job_id = json.loads(out.stdout)["id"]
    runner.invoke(main, ["process", "history_tasks:app"])
    app = conveyor.App(url)
    app.declare("send")
    app.resubmit(job_id, args=["b@good"], kwargs={"subject": "Again"})
    runner.invoke(main, ["process", "history_tasks:app"])

    shown = runner.invoke(main, ["jobs", "show", job_id, "--json"])
    data = json.loads(shown.stdout)
    assert (data["attempt"], data["prior_attempts"], data["status"]) == (2, 1, "completed")
    assert [(a["attempt"], a["args"], a["kwargs"]) for a in data["attempts"]] == [
        (1, ["a@bad"], {}),
        (2, ["b@good"], {"subject": "Again"}),
    ]
    text = runner.invoke(main, ["jobs", "show", job_id]).stdout
    assert "'a@bad'" in text and "'b@good', subject='Again'" in text, text
    assert "2/2 (1 before the resubmit)" in text, text

    with (
        serving(create_app(app, [KEY])) as base_url,
        httpx.Client(base_url=base_url, headers={"x-api-key": KEY}, timeout=30) as client,
    ):
        body = client.get(f"/api/jobs/{job_id}").json()
    assert body["prior_attempts"] == 1
    assert [(a["attempt"], a["args"], a["kwargs"]) for a in body["attempts"]] == [
        (1, ["a@bad"], {}),
        (2, ["b@good"], {"subject": "Again"}),
    ]
    app.close()
