"""Error classification: what an exception from a task means for its job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .backoff import BackoffPolicy
from .errors import JobCancelled, Permanent, RetryAfter

Verdict = Literal["retry", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A task's retry settings: attempts, backoff and which errors are transient."""

    max_attempts: int
    backoff: BackoffPolicy
    retry_on: tuple[type[BaseException], ...] = ()
    permanent_on: tuple[type[BaseException], ...] = ()

    def is_permanent(self, exc: BaseException) -> bool:
        """Permanent: ``Permanent``, a ``permanent_on`` class, or outside a non-empty ``retry_on``."""
        if isinstance(exc, Permanent):
            return True
        if self.permanent_on and isinstance(exc, self.permanent_on):
            return True
        if isinstance(exc, RetryAfter):
            return False
        return bool(self.retry_on) and not isinstance(exc, self.retry_on)

    def classify(self, exc: BaseException, attempt: int) -> tuple[Verdict, float]:
        """The verdict for ``exc`` raised by run number ``attempt``, and the retry delay."""
        if isinstance(exc, JobCancelled):
            return "cancelled", 0.0
        if self.is_permanent(exc) or attempt >= self.max_attempts:
            return "failed", 0.0
        if isinstance(exc, RetryAfter):
            return "retry", exc.seconds
        return "retry", max(0.0, self.backoff.delay(attempt))
