"""The pytest plugin behind the conformance suite: where the backend URL comes from, and the fixtures.

``python -m conveyor.testing.conformance`` loads it with ``-p``; another test run loads
it with ``pytest_plugins = ["conveyor.testing.conformance.plugin"]`` and may override
``backend_url`` (for example to parametrize it over several backends).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ... import App
from . import suite_modules
from .stores import fresh_store

#: The environment variable read when ``--conveyor-url`` is not given.
URL_VARIABLE = "CONVEYOR_CONFORMANCE_URL"

# The suite's modules are imported by the run that collects them (here or in a project's
# own tests): rewrite their asserts so a failure shows the values compared.
pytest.register_assert_rewrite(*suite_modules())


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--conveyor-url``: the backend the conformance suite runs against."""
    parser.getgroup("conveyor").addoption(
        "--conveyor-url",
        default=None,
        help=f"backend URL for the conformance suite (default: ${URL_VARIABLE}); each test "
        "gets a fresh store derived from it",
    )


@pytest.fixture(scope="session")
def conveyor_base_url(pytestconfig: pytest.Config) -> str:
    """The URL the run was given, from ``--conveyor-url`` or the environment."""
    url = pytestconfig.getoption("conveyor_url") or os.environ.get(URL_VARIABLE)
    if not url:
        pytest.fail(f"no backend URL: pass --conveyor-url URL or set {URL_VARIABLE}", pytrace=False)
    return str(url)


@pytest.fixture
def backend_url(conveyor_base_url: str) -> Iterator[str]:
    """A URL to an empty store of its own on the backend under test, removed afterwards."""
    with fresh_store(conveyor_base_url) as url:
        yield url


@pytest.fixture
def app(backend_url: str) -> Iterator[App]:
    """An App on a fresh store, with a short lease so lease tests are quick."""
    application = App(backend_url, lease=2.0, reaper_interval=0.2, grace=5.0)
    yield application
    application.close()
