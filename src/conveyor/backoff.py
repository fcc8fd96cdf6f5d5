"""Backoff policies: how long a job waits in ``retry`` before its next attempt.

Each policy is a small frozen object; ``policy.delay(retry_number)`` gives the
seconds to wait before retry number ``retry_number`` (1 for the first retry).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, Protocol

Jitter = Literal["full", "equal", "none"]


class BackoffPolicy(Protocol):
    """Anything with ``delay(retry_number) -> seconds``."""

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        ...


def _check_number(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:  # NaN too
        raise ValueError(f"backoff {name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_retry_number(retry_number: int) -> int:
    if retry_number < 1:
        raise ValueError(f"retry_number is 1-based, got {retry_number!r}")
    return retry_number


@dataclass(frozen=True)
class Exponential:
    """``base * 2**(n-1)`` seconds, capped at ``cap``, with jitter (full by default)."""

    base: float = 1.0
    cap: float = 300.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        _check_number("base", self.base)
        _check_number("cap", self.cap)
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"jitter must be 'full', 'equal' or 'none', got {self.jitter!r}")

    def ceiling(self, retry_number: int) -> float:
        """The delay before jitter: ``min(cap, base * 2**(n-1))``."""
        n = _check_retry_number(retry_number)
        # Cap the exponent first: 2**10_000 is a float overflow.
        return min(self.cap, self.base * 2.0 ** min(n - 1, 64))

    def delay(self, retry_number: int) -> float:
        """A jittered delay within ``[0, ceiling]`` (full) or ``[ceiling/2, ceiling]`` (equal)."""
        ceiling = self.ceiling(retry_number)
        if self.jitter == "full":
            return random.uniform(0.0, ceiling)
        if self.jitter == "equal":
            return ceiling / 2 + random.uniform(0.0, ceiling / 2)
        return ceiling


@dataclass(frozen=True)
class Fixed:
    """The same delay before every retry."""

    seconds: float

    def __post_init__(self) -> None:
        _check_number("seconds", self.seconds)

    def delay(self, retry_number: int) -> float:
        """Always ``seconds``."""
        _check_retry_number(retry_number)
        return float(self.seconds)


@dataclass(frozen=True)
class Linear:
    """``base * n`` seconds, capped at ``cap``."""

    base: float
    cap: float = float("inf")

    def __post_init__(self) -> None:
        _check_number("base", self.base)
        _check_number("cap", self.cap)

    def delay(self, retry_number: int) -> float:
        """``min(cap, base * n)``."""
        return min(self.cap, self.base * _check_retry_number(retry_number))


@dataclass(frozen=True)
class Polynomial:
    """``base * n**power`` seconds, capped: ``polynomial(60, 2)`` waits 1, 4, 9 minutes."""

    base: float
    power: float = 2.0
    cap: float = float("inf")

    def __post_init__(self) -> None:
        _check_number("base", self.base)
        _check_number("power", self.power)
        _check_number("cap", self.cap)

    def delay(self, retry_number: int) -> float:
        """``min(cap, base * n**power)``."""
        n = _check_retry_number(retry_number)
        return float(min(self.cap, self.base * float(n) ** self.power))


def exponential(base: float = 1.0, cap: float = 300.0, jitter: Jitter = "full") -> Exponential:
    """Exponential backoff with a cap and full jitter: the default policy."""
    return Exponential(base, cap, jitter)


def fixed(seconds: float) -> Fixed:
    """The same delay before every retry (``fixed(0)`` retries at once)."""
    return Fixed(seconds)


def linear(base: float, cap: float = float("inf")) -> Linear:
    """``base``, ``2*base``, ``3*base``... seconds."""
    return Linear(base, cap)


def polynomial(base: float, power: float = 2.0, cap: float = float("inf")) -> Polynomial:
    """``base * n**power`` seconds: ``polynomial(60, 2)`` gives 1, 4, 9 minutes."""
    return Polynomial(base, power, cap)


DEFAULT: BackoffPolicy = Exponential()

__all__ = [
    "DEFAULT",
    "BackoffPolicy",
    "Exponential",
    "Fixed",
    "Linear",
    "Polynomial",
    "exponential",
    "fixed",
    "linear",
    "polynomial",
]
