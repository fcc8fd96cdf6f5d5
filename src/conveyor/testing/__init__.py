"""What users' tests import: :func:`drain`, and helpers for tests that run a real worker.

``conveyor.testing`` needs no test framework. The conformance suite that every
backend must pass ships beside it as :mod:`conveyor.testing.conformance` (that one
needs pytest: ``pip install 'conveyor[testing]'``).
"""

from .drain import DrainResult, drain
from .helpers import final_state, running_worker, wait_for

__all__ = ["DrainResult", "drain", "final_state", "running_worker", "wait_for"]
