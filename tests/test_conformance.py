"""The shipped conformance suite (``conveyor.testing.conformance``) on every test backend.

Its test modules live in the package so ``python -m conveyor.testing.conformance URL``
can run them against any backend; this module collects them into the repository's
run, where ``backend_url`` (tests/conftest.py) is parametrized over the test backends.
Each module's tests and fixtures are re-exported here under their own names (they
keep their module's globals), so ids read ``tests/test_conformance.py::test_...[sqlite]``;
a name used by two modules is refused rather than one silently hiding the other.
"""

from __future__ import annotations

import importlib
from typing import Any

from conveyor.testing.conformance import suite_modules


def _collected_names(module: Any) -> dict[str, Any]:
    """The tests and fixtures one suite module defines (what pytest collects from it)."""
    return {
        name: value
        for name, value in vars(module).items()
        if getattr(value, "__module__", None) == module.__name__
        and (name.startswith("test_") or _is_fixture(value))
    }


def _is_fixture(value: Any) -> bool:
    # pytest 8.4+ marks fixture definitions with the first attribute, earlier releases with the second.
    return hasattr(value, "_fixture_function_marker") or hasattr(value, "_pytestfixturefunction")


_origin: dict[str, str] = {}
for _module_name in suite_modules():
    for _name, _value in _collected_names(importlib.import_module(_module_name)).items():
        if _name in _origin:
            raise RuntimeError(f"{_name} is defined by both {_origin[_name]} and {_module_name}: rename one")
        _origin[_name] = _module_name
        globals()[_name] = _value
