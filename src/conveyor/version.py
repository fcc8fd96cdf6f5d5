"""Conveyor's version, as a constant: ``importlib.metadata`` costs a worker tens of ms to import.

Kept equal to ``version`` in pyproject.toml (``tests/test_import_cost.py`` checks it).
"""

VERSION = "0.1.0"
