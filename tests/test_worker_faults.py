"""The worker's fault points (CONVEYOR_FAULT_POINT) and --max-memory: parsing, and what they do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

import conveyor
from conveyor.cli import memory_size
from conveyor.errors import ConfigurationError
from conveyor.testing.helpers import final_state, running_worker
from conveyor.worker.faults import (
    FAULT_POINT_ENV,
    MEMORY_EXIT_CODE,
    fault_point_from_environment,
    parse_fault_point,
)


def test_fault_points_parse_and_bad_ones_name_what_is_valid() -> None:
    point = parse_fault_point("after-run:exit:3")
    assert (point.point, point.action, point.on_passage) == ("after-run", "exit", 3)
    assert parse_fault_point("after-claim:stop").on_passage == 1
    for bad in ("after-run", "before-run:exit", "after-run:explode", "after-run:exit:0", "after-run:exit:x"):
        with pytest.raises(ConfigurationError, match="POINT:ACTION"):
            parse_fault_point(bad)


def test_unset_fault_point_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULT_POINT_ENV, raising=False)
    assert fault_point_from_environment() is None
    monkeypatch.setenv(FAULT_POINT_ENV, " ")
    assert fault_point_from_environment() is None


def test_a_worker_reads_the_fault_point_once_when_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = conveyor.App(f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setenv(FAULT_POINT_ENV, "after-run:exit:2")
    worker = conveyor.Worker(app)
    assert worker.fault is not None and worker.fault.on_passage == 2
    monkeypatch.delenv(FAULT_POINT_ENV)
    assert conveyor.Worker(app).fault is None


def test_after_run_exit_leaves_before_the_acknowledgement(tmp_path: Path) -> None:
    """The process exits with the fault code; the job stays processing, its handler having returned."""
    db = tmp_path / "f.db"
    code = f"""
import conveyor
from conveyor.testing.helpers import running_worker
app = conveyor.App("sqlite:///{db}")
@app.task()
def work() -> int:
    open("{tmp_path / "ran"}", "w").write("yes")
    return 1
app.enqueue("work")
with running_worker(app):
    import time; time.sleep(30)
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={
            "CONVEYOR_FAULT_POINT": "after-run:exit",
            "PYTHONPATH": str(Path(conveyor.__file__).parent.parent),
        },
        timeout=60,
    )
    assert result.returncode == 86
    assert (tmp_path / "ran").read_text() == "yes"
    assert conveyor.App(f"sqlite:///{db}").stats()["counts"]["processing"] == 1


def test_memory_sizes() -> None:
    parse = lambda text: memory_size(None, None, text)  # type: ignore[arg-type]  # noqa: E731
    assert parse("512") == 512 << 20
    assert parse("512M") == parse("512MiB") == 512 << 20
    assert parse("2G") == 2 << 30 and parse("65536k") == 64 << 20
    assert parse(None) is None
    for bad in ("", "lots", "-1G", "0"):
        with pytest.raises(click.BadParameter, match="512M"):
            parse(bad)


def test_memory_error_is_the_jobs_error_without_a_limit(tmp_path: Path) -> None:
    app = conveyor.App(f"sqlite:///{tmp_path / 'm.db'}")

    @app.task(max_attempts=1)
    def hog() -> None:
        raise MemoryError("pretend")

    job = hog.enqueue()
    with running_worker(app):
        assert final_state(job) == "failed"
    assert "MemoryError" in (job.refresh().error or "")


def test_a_memory_error_under_max_memory_ends_the_process_after_writing_finished_outcomes(
    tmp_path: Path,
) -> None:
    """The job finished just before is written (not re-run); the hog's job stays leased to lapse."""
    db = tmp_path / "mem.db"
    code = f"""
import conveyor, threading
app = conveyor.App("sqlite:///{db}")
@app.task()
def quick() -> int:
    return 1
@app.task()
def hog() -> None:
    raise MemoryError("pretend the ceiling was hit")
app.enqueue("quick")
app.enqueue("hog", delay=0.3)
conveyor.Worker(app, concurrency=1, prefetch=0, idle_wait=0.05, max_memory=64 << 30).run()
"""
    env = {"PYTHONPATH": str(Path(conveyor.__file__).parent.parent)}
    result = subprocess.run([sys.executable, "-c", code], env=env, timeout=60)
    assert result.returncode == MEMORY_EXIT_CODE
    app = conveyor.App(f"sqlite:///{db}")
    counts = app.stats()["counts"]
    assert counts["completed"] == 1 and counts["processing"] == 1, counts
