"""The App the process tests run in real worker processes.

Every execution appends ``<job number> <pid>`` to ``$CRASH_LOG_DIR/<pid>.log``
(O_APPEND, one write per line), so the test can count runs per job even across
SIGKILLs.
"""

from __future__ import annotations

import os
import random
import time

import conveyor

app = conveyor.App(os.environ["CONVEYOR_URL"], lease=2.0, reaper_interval=0.5)
LOG_DIR = os.environ.get("CRASH_LOG_DIR", ".")
_fd: int | None = None


@app.task(max_attempts=100)
def record(n: int, work_ms: float = 30.0) -> int:
    """Do some "work", then record that job n ran."""
    global _fd
    time.sleep(random.uniform(0.5, 1.5) * work_ms / 1000)
    if _fd is None:
        _fd = os.open(os.path.join(LOG_DIR, f"{os.getpid()}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(_fd, f"{n} {os.getpid()}\n".encode())
    return n


_spans: int | None = None


@app.task(max_attempts=100, queue="limited")
def hold(n: int, work_ms: float = 50.0) -> int:
    """Work for ``work_ms``, then append ``<n> <start> <end>`` to this process's ``.spans`` file."""
    global _spans
    start = time.time()
    time.sleep(work_ms / 1000)
    end = time.time()
    if _spans is None:
        _spans = os.open(
            os.path.join(LOG_DIR, f"{os.getpid()}.spans"), os.O_WRONLY | os.O_CREAT | os.O_APPEND
        )
    os.write(_spans, f"{n} {start:.6f} {end:.6f}\n".encode())
    return n
