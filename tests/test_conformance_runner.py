"""python -m conveyor.testing.conformance URL: the shipped suite against a URL, and its exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.errors import BadURL
from conveyor.testing.conformance.stores import fresh_store, isolation_for

#: A few quick tests of the suite: enough to show the runner runs it.
QUICK = "test_enqueue_stores_a_pending_job_with_every_field or test_stats_has_every_state"


def run_suite(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor.testing.conformance", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_runner_passes_on_a_sqlite_file_and_leaves_no_store_behind(tmp_path: Path) -> None:
    run = run_suite(f"sqlite:///{tmp_path / 'x.db'}", "-x", "-q", "-k", QUICK, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    assert list(tmp_path.iterdir()) == [], "each test's store is removed after it"


def test_runner_takes_a_namespace_placeholder_for_any_backend(tmp_path: Path) -> None:
    run = run_suite(f"sqlite:///{tmp_path}/{{namespace}}.db", "-q", "-k", QUICK, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(list(tmp_path.glob("t*.db"))) == 2, "one store per test, named where the placeholder was"


def test_runner_exits_with_pytests_status(tmp_path: Path) -> None:
    run = run_suite(f"sqlite:///{tmp_path / 'x.db'}", "-q", "-k", "no_test_has_this_name", cwd=tmp_path)
    assert run.returncode == pytest.ExitCode.NO_TESTS_COLLECTED


def test_runner_refuses_a_bad_url_with_one_clear_line(tmp_path: Path) -> None:
    run = run_suite("nosuch://host/db", "-q", cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("conveyor.testing.conformance: cannot use backend URL 'nosuch://host/db'")
    assert "{namespace}" in run.stderr


def test_runner_refuses_an_unreachable_backend(tmp_path: Path) -> None:
    run = run_suite("redis://127.0.0.1:1/0", "-q", cwd=tmp_path)
    assert run.returncode == 2 and "cannot use backend URL 'redis://127.0.0.1:1/0'" in run.stderr


def test_runner_without_a_url_prints_its_usage(tmp_path: Path) -> None:
    run = run_suite("-q", cwd=tmp_path)
    assert run.returncode == 2 and "no backend URL given" in run.stderr and "usage:" in run.stderr


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("sqlite:////srv/q/x.db", "sqlite:////srv/q/x-tag.db"),
        ("sqlite:///x.db?timeout=3", "sqlite:///x-tag.db?timeout=3"),
        ("postgresql://u@h/db?schema=jobs&pool_max=3", "postgresql://u@h/db?schema=jobs_tag&pool_max=3"),
        ("redis://h:6379/0", "redis://h:6379/0?prefix=conveyor_tag"),
        ("memory://unit", "memory://unit-tag"),
        ("custom://h/{namespace}?x=1", "custom://h/tag?x=1"),
    ],
)
def test_each_test_store_is_derived_from_the_url(base: str, expected: str) -> None:
    assert isolation_for(base).url_for(base, "tag") == expected


def test_a_url_that_cannot_be_isolated_is_refused() -> None:
    refused = r"scheme 'custom' is not one of .*put \{namespace\} in the URL"
    with pytest.raises(BadURL, match=refused), fresh_store("custom://h/db"):
        pass
