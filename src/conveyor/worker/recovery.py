"""How a worker's own loops ride out a failing backend: a growing delay and a one-line log."""

from __future__ import annotations


class RetryDelay:
    """Delays between retries of a failing backend call: ``first`` seconds, doubling to ``cap``.

    Not a job's backoff (that is ``conveyor.backoff``): this paces the worker's own
    calls (claim, outcome writes, maintenance runs) while the backend is away.
    """

    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.current = 0.0

    def failed(self) -> float:
        """The delay to wait after one more failure."""
        self.current = self.first if self.current == 0 else min(self.cap, self.current * 2)
        return self.current

    def succeeded(self) -> None:
        """Reset after a success."""
        self.current = 0.0


def error_line(exc: BaseException) -> str:
    """One line for a log: the error's class and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
