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
    """``count`` time-ordered, globally unique ids in order (one lock round for all).

    Each id is a 48-bit millisecond time, a 16-bit sequence and 64 random bits.
    """
    global _last_ms, _seq
    ids: list[str] = []
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _seq = itertools.count()
        else:
            ms = _last_ms  # clock stepped back or same ms: keep order by sequence
        for _ in range(count):
            seq = next(_seq)
            if seq > 0xFFFF:
                _last_ms = ms = ms + 1
                _seq = itertools.count(1)
                seq = 0
            # random is reseeded in every forked child, so two processes never share a stream.
            ids.append(f"{ms:012x}{seq:04x}{random.getrandbits(64):016x}")
    return ids


def new_job_id() -> str:
    """One id (see :func:`new_job_ids`)."""
    return new_job_ids(1)[0]
