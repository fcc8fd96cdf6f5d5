"""``conveyor worker --processes N``: N worker processes under one supervisor.

The supervisor forwards SIGTERM/SIGINT to its children (each then shuts down
gracefully), and restarts a child that died unexpectedly, with backoff, so a
crashed process never leaves the pool short for long.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .metrics import SupervisorMetrics

log = logging.getLogger("conveyor.supervisor")

#: Set in a child's environment: it must run one process, not supervise again.
CHILD_ENV = "CONVEYOR_SUPERVISED_CHILD"


def is_child() -> bool:
    """True inside a process started by the supervisor."""
    return os.environ.get(CHILD_ENV) == "1"


def supervise(argv: list[str], processes: int, grace: float, metrics: SupervisorMetrics | None = None) -> int:
    """Run ``conveyor <argv>`` as ``processes`` children until signalled; returns the exit code.

    With ``metrics``, the children record into its run directory and it serves their sum.
    """
    env = {**os.environ, CHILD_ENV: "1", **(metrics.child_env() if metrics is not None else {})}
    command = [sys.executable, "-m", "conveyor", *argv]
    children: dict[int, subprocess.Popen[bytes]] = {}
    restarts: dict[int, float] = {}
    #: A ``--burst`` child that exits 0 has emptied its queues: it is done, not crashed.
    burst = "--burst" in argv
    finished: set[int] = set()
    stopping = False
    forwarded = 0

    def start(slot: int) -> None:
        children[slot] = subprocess.Popen(command, env=env)
        log.info("started worker process %d (pid %d)", slot, children[slot].pid)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping, forwarded
        stopping = True
        forwarded += 1
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for slot in range(processes):
        start(slot)
    deadline: float | None = None
    while True:
        alive = {slot: c for slot, c in children.items() if c.poll() is None}
        if stopping:
            if not alive:
                break
            deadline = deadline or time.monotonic() + grace + 10
            if time.monotonic() > deadline:
                for child in alive.values():
                    log.warning("worker pid %d did not stop in time: killing it", child.pid)
                    child.kill()
        else:
            for slot, child in children.items():
                if burst and child.returncode == 0:
                    finished.add(slot)
                    continue
                if child.poll() is not None and slot not in alive:
                    delay = min(30.0, max(1.0, restarts.get(slot, 0.5) * 2))
                    restarts[slot] = delay
                    log.warning(
                        "worker process %d (pid %d) exited with %s; restarting in %.0fs",
                        slot,
                        child.pid,
                        child.returncode,
                        delay,
                    )
                    time.sleep(delay)
                    if not stopping:
                        start(slot)
            if len(finished) == len(children):
                break
        time.sleep(0.2)
    codes = [c.returncode for c in children.values()]
    return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1
