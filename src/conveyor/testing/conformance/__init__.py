"""The conformance suite: the delivery contract of Conveyor, test by test, for any backend.

A backend is done when this suite passes on it. Run it against a URL with::

    python -m conveyor.testing.conformance sqlite:///tmp/conveyor.db -x -q

(pytest is needed: ``pip install 'conveyor[testing]'``). Each test gets a fresh
store derived from the URL (see :mod:`conveyor.testing.conformance.stores`). The
fixtures the tests use come from the pytest plugin
:mod:`conveyor.testing.conformance.plugin`: ``backend_url`` (a fresh store) and
``app`` (an App on it with a short lease). A project's own test run can load the
plugin and override ``backend_url`` to run the suite on its own stores.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

#: The directory holding the suite's test modules.
SUITE_DIR = Path(__file__).parent


def suite_modules() -> list[str]:
    """The dotted names of the suite's test modules, in a stable order."""
    return sorted(
        f"{__name__}.{module.name}"
        for module in pkgutil.iter_modules([str(SUITE_DIR)])
        if module.name.startswith("test_")
    )
