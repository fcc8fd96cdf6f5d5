"""Test helpers, kept importable as ``helpers`` for the repository's own tests.

They live in the package (:mod:`conveyor.testing.helpers`) so users' tests and the
shipped conformance suite use the same ones.
"""

from conveyor.testing.helpers import final_state, running_worker, wait_for

__all__ = ["final_state", "running_worker", "wait_for"]
