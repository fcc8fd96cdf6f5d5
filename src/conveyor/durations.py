"""Durations on the command line: ``30``, ``30s``, ``5m``, ``2h``, ``7d`` (seconds by default)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError naming the accepted forms."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number of seconds or 30s, 5m, 2h, 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]
