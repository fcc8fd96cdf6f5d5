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
    append = ids.append
    # random is reseeded in every forked child, so two processes never share a stream. The
    # random parts of the whole batch are drawn at once: one number, cut into 16-digit pieces.
    noise = f"{random.getrandbits(64 * count):0{16 * count}x}" if count > 0 else ""
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _seq = itertools.count()
        else:
            ms = _last_ms  # clock stepped back or same ms: keep order by sequence
        head = f"{ms:012x}"
        for at in range(0, 16 * count, 16):
            seq = next(_seq)
            if seq > 0xFFFF:
                _last_ms = ms = ms + 1
                _seq = itertools.count(1)
                seq = 0
                head = f"{ms:012x}"
            append(f"{head}{seq:04x}{noise[at : at + 16]}")
    return ids


def new_job_id() -> str:
    """One id (see :func:`new_job_ids`)."""
    return new_job_ids(1)[0]
