"""Every worker process a torture scenario started is gone when the scenario ends, pass or fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from torture.harness import Workers


@pytest.fixture(autouse=True)
def no_stray_workers() -> Iterator[None]:
    yield
    Workers.kill_strays()
