"""The App the torture scenarios run in real worker processes.

Every execution that returns appends one JSON line ``{job, n, attempt, worker,
start, end, outcome}`` to ``$TORTURE_LOG_DIR/<pid>.log``: a file of this
process's own, opened with O_APPEND and written with one ``write`` per line, so
lines of concurrent threads never interleave and a SIGKILL can lose at most the
line being written. The log is outside the backend on purpose: the checker
compares what the store says with what really ran. There is no fsync: the
faults injected kill processes, never the machine, and the page cache survives
a process.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time

import conveyor

#: The clock-skew scenario's offset (seconds) added to this process's wall clock. libfaketime
#: would be the faithful tool, but its sleep interposition fails (EINVAL) under Python 3.11's
#: clock_nanosleep, so the offset is injected here, before the worker reads any time.
CLOCK_OFFSET = float(os.environ.get("TORTURE_CLOCK_OFFSET", "0"))
if CLOCK_OFFSET:
    _real_time, _real_time_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + CLOCK_OFFSET
    time.time_ns = lambda: _real_time_ns() + int(CLOCK_OFFSET * 1e9)

app = conveyor.App(
    os.environ["CONVEYOR_URL"],
    lease=float(os.environ.get("TORTURE_LEASE", "2")),
    reaper_interval=float(os.environ.get("TORTURE_REAPER_INTERVAL", "0.5")),
)
LOG_DIR = os.environ.get("TORTURE_LOG_DIR", ".")
_fd: int | None = None
_fd_lock = threading.Lock()


def record(n: int, started: float, outcome: str = "returned") -> None:
    """Append one execution of the running job to this process's log."""
    global _fd
    job = conveyor.current_job()
    line = {
        "job": job.id,
        "n": n,
        "attempt": job.attempt,
        "worker": os.getpid(),
        "start": started,
        "end": time.time(),
        "outcome": outcome,
    }
    with _fd_lock:
        if _fd is None:
            path = os.path.join(LOG_DIR, f"{os.getpid()}.log")
            _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, (json.dumps(line) + "\n").encode())


@app.task(max_attempts=100)
def step(n: int, work_ms: float = 30.0) -> int:
    """Work for about ``work_ms`` milliseconds, record the execution, return n."""
    started = time.time()
    deadline = time.monotonic() + work_ms / 1000
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))
    record(n, started)
    return n


@app.task(max_attempts=2)
def exit_now(n: int) -> None:
    """A poison pill: the process leaves without clean-up."""
    os._exit(3)


@app.task(max_attempts=2)
def segfault(n: int) -> None:
    """A poison pill: a read of address 0 (SIGSEGV)."""
    ctypes.string_at(0)


@app.task(max_attempts=2)
def blow_memory(n: int) -> int:
    """A poison pill: allocates far past any sane ``--max-memory``."""
    hoard = [bytearray(64 << 20) for _ in range(256)]  # 16 GiB
    return len(hoard)
