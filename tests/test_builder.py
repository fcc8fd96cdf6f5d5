"""The one job builder (``App.prepare``): every option checked once, the same rule on every path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor.backends.base import ClaimedJob, Outcome
from conveyor.builder import MAX_PRIORITY, MIN_PRIORITY, build_jobs
from conveyor.errors import InvalidPayload


@pytest.fixture
def app(tmp_path: Path) -> conveyor.App:
    """An App whose backend is never opened: preparing jobs stores nothing."""
    application = conveyor.App(f"sqlite:///{tmp_path}/unused.db", max_payload_bytes=1000)

    @application.task(queue="mail", priority=2, max_attempts=6)
    def send(to: str) -> None: ...

    return application


def test_plain_items_take_the_tasks_defaults(app: conveyor.App) -> None:
    (job,) = app.prepare([{"task": "send", "args": ["a@example.com"]}])
    assert (job.task, job.queue, job.priority, job.max_attempts) == ("send", "mail", 2, 6)
    assert json.loads(job.payload) == {"args": ["a@example.com"], "kwargs": {}}
    assert (job.run_at, job.delay, job.key, job.key_mode, job.on_complete) == (None, 0.0, None, "keep", None)


def test_options_override_and_none_means_the_default(app: conveyor.App) -> None:
    (job, plain) = app.prepare(
        [
            {
                "task": "send",
                "args": ["a@example.com"],
                "queue": "other",
                "priority": -3,
                "max_attempts": 1,
                "delay": timedelta(minutes=1),
                "key": "k",
                "key_mode": "replace",
                "on_complete": "https://example.com/done",
            },
            {"task": "send", "args": ["b@example.com"], "queue": None, "priority": None, "run_at": None},
        ]
    )
    assert (job.queue, job.priority, job.max_attempts, job.delay) == ("other", -3, 1, 60.0)
    assert (job.key, job.key_mode, job.on_complete) == ("k", "replace", "https://example.com/done")
    assert (plain.queue, plain.priority, plain.run_at) == ("mail", 2, None)


def test_one_run_at_rule(app: conveyor.App) -> None:
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    forms: list[Any] = [
        moment,
        moment.replace(tzinfo=None),
        "2030-01-02T03:04:05",
        "2030-01-02T03:04:05Z",
        "2030-01-02T04:04:05+01:00",
        moment.timestamp(),
        int(moment.timestamp()),
    ]
    jobs = app.prepare([{"task": "send", "args": ["a@example.com"], "run_at": form} for form in forms])
    assert {job.run_at for job in jobs} == {moment.timestamp()}


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("queue", "bad queue", conveyor.InvalidName, "queue name"),
        ("priority", MAX_PRIORITY + 1, ValueError, "priority must be from"),
        ("priority", MIN_PRIORITY - 1, ValueError, "priority must be from"),
        ("priority", 1.5, TypeError, "priority must be an int"),
        ("priority", True, TypeError, "priority must be an int"),
        ("max_attempts", 0, ValueError, "max_attempts must be an int from 1 to 1000"),
        ("max_attempts", 1001, ValueError, "max_attempts"),
        ("delay", -1, ValueError, "delay must be from 0"),
        ("delay", float("nan"), ValueError, "delay must be from 0"),
        ("delay", "soon", TypeError, "delay must be seconds"),
        ("run_at", "tomorrow", ValueError, "ISO-8601"),
        ("run_at", -5, ValueError, "out of range"),
        ("run_at", [], TypeError, "run_at must be"),
        ("key", "", ValueError, "key must be a non-empty string"),
        ("key", "k" * 513, ValueError, "at most 512"),
        ("key_mode", "merge", ValueError, "key_mode must be 'keep' or 'replace'"),
        ("on_complete", "ftp://example.com", ValueError, "on_complete must be an absolute"),
        ("on_complete", "/relative", ValueError, "on_complete"),
    ],
)
def test_each_bad_option_is_named(
    app: conveyor.App, field: str, value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        app.prepare([{"task": "send", field: value}])


def test_bad_items(app: conveyor.App) -> None:
    with pytest.raises(conveyor.UnknownTask, match=r"'sned' \(registered: conveyor.http, send\)"):
        app.prepare([{"task": "sned"}])
    with pytest.raises(conveyor.InvalidPayload, match="item 1 has no 'task'"):
        app.prepare([{"task": "send"}, {"args": []}])
    with pytest.raises(conveyor.InvalidPayload, match=r"item 0 has unknown field\(s\) \['colour'\]"):
        app.prepare([{"task": "send", "colour": "red"}])
    with pytest.raises(conveyor.InvalidPayload, match="item 0 is not an object"):
        app.prepare(["send"])  # type: ignore[list-item]
    with pytest.raises(conveyor.InvalidPayload, match="args of send must be a list"):
        app.prepare([{"task": "send", "args": "abc"}])
    with pytest.raises(conveyor.InvalidPayload, match="not JSON-serialisable"):
        app.prepare([{"task": "send", "args": [object()]}])
    with pytest.raises(conveyor.PayloadTooLarge, match="over the limit of 1,000 bytes"):
        app.prepare([{"task": "send", "args": ["x" * 2000]}])
    with pytest.raises(ValueError, match="delay or run_at, not both"):
        app.prepare([{"task": "send", "delay": 1, "run_at": 2_000_000_000}])


def test_python_options_are_checked_by_name(app: conveyor.App) -> None:
    send = app.get_task("send")
    with pytest.raises(TypeError, match=r"unknown enqueue option\(s\) \['prio'\]; valid: delay"):
        send.options(prio=1)
    with pytest.raises(TypeError, match="unknown enqueue option"):
        app.enqueue("send", args=["a"], prio=1)


def test_task_defaults_use_the_same_checks(app: conveyor.App) -> None:
    with pytest.raises(ValueError, match="max_attempts must be an int from 1 to 1000"):
        app.task(name="t1", max_attempts=5000)(lambda: None)
    with pytest.raises(ValueError, match="priority must be from"):
        app.task(name="t2", priority=2**40)(lambda: None)


def test_build_jobs_gives_fresh_ids_and_keeps_order(app: conveyor.App) -> None:
    jobs = build_jobs(({"task": "send", "args": [n]} for n in range(50)), app.tasks, 1000)
    assert len({job.id for job in jobs}) == 50
    assert [json.loads(job.payload)["args"] for job in jobs] == [[n] for n in range(50)]


def claimed(on_complete: str | None) -> ClaimedJob:
    return ClaimedJob("a" * 32, "send", "mail", "{}", 1, 3, "lease-1", 5, None, on_complete, 0.0, 0.0)


def test_follow_ups_build_the_completion_callback_through_the_builder(app: conveyor.App) -> None:
    done = Outcome("a" * 32, "lease-1", "completed", 1, "w", 1.0, 2.0, result='"ok"')
    (callback,) = app.follow_ups(claimed("https://example.com/hook"), done)
    assert (callback.task, callback.queue, callback.priority) == ("conveyor.http", "mail", 5)
    assert callback.key == f"conveyor.on_complete:{'a' * 32}:lease-1"
    kwargs = json.loads(callback.payload)["kwargs"]
    assert kwargs["url"] == "https://example.com/hook" and kwargs["json"]["result"] == "ok"
    assert app.follow_ups(claimed(None), done) == ()
    retry = Outcome("a" * 32, "lease-1", "retry", 1, "w")
    assert app.follow_ups(claimed("https://example.com/hook"), retry) == ()


def test_arguments_nested_deeper_than_the_encoder_recurses_are_invalid_payload(app: conveyor.App) -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidPayload, match="nested too deeply"):
        app.prepare([{"task": "send", "args": [deep]}])
