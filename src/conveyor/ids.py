"""Job ids: 32 hex digits that sort by creation time (UUIDv7 layout), FIFO within a process."""

from __future__ import annotations

import itertools
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_seq = itertools.count()


def new_job_ids(count: int) -> list[str]:
    """``count`` ids in order, for a bulk enqueue (one lock round for all)."""
    global _last_ms, _seq
    ids: list[str] = []
    with _lock:
        ms = max(time.time_ns() // 1_000_000, _last_ms)
        if ms > _last_ms:
            _last_ms = ms
            _seq = itertools.count()
        for _ in range(count):
            seq = next(_seq)
            if seq > 0xFFFF:
                _last_ms = ms = ms + 1
                _seq = itertools.count(1)
                seq = 0
            ids.append(f"{ms:012x}{seq:04x}{random.getrandbits(64):016x}")
    return ids


def new_job_id() -> str:
    """A time-ordered, globally unique id: 48-bit ms, 16-bit sequence, 64 random bits."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _seq = itertools.count()
        else:
            ms = _last_ms  # clock stepped back or same ms: keep order by sequence
        seq = next(_seq)
        if seq > 0xFFFF:
            _last_ms = ms = ms + 1
            _seq = itertools.count(1)
            seq = 0
    # random is reseeded in every forked child, so two processes never share a stream.
    return f"{ms:012x}{seq:04x}{random.getrandbits(64):016x}"
