"""Fixtures shared by every test: the backend parameter and an App on a fresh store.

The ``app`` fixture, like the conformance suite itself, comes from the package's plugin
(:mod:`conveyor.testing.conformance.plugin`); here ``backend_url`` is overridden so
every test runs on each test backend instead of one ``--conveyor-url``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from backends import ALL, SHARED_ACROSS_PROCESSES, fresh_url, require_or_skip

pytest_plugins = ["conveyor.testing.conformance.plugin"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    from backends import required, unavailable

    lines = []
    for name in ALL:
        reason = unavailable(name)
        lines.append(f"backend {name}: {'available' if reason is None else 'UNAVAILABLE - ' + reason}")
    lines.append(f"required backends: {', '.join(sorted(required())) or 'none'}")
    return lines


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "processes: the test opens the backend URL from other processes (worker subprocesses), "
        "so it runs only on backends shared across processes (not memory)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a backend runs on each engine; ``processes`` tests on shared ones only."""
    if "backend_name" in metafunc.fixturenames:
        processes = metafunc.definition.get_closest_marker("processes") is not None
        metafunc.parametrize("backend_name", SHARED_ACROSS_PROCESSES if processes else ALL, indirect=True)


@pytest.fixture
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each backend in turn; unavailable ones skip loudly (or fail where required)."""
    name: str = request.param
    require_or_skip(name)
    return name


@pytest.fixture
def backend_url(backend_name: str, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store on the current backend."""
    with fresh_url(backend_name, tmp_path) as url:
        yield url
