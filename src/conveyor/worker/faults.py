"""Fault points and the memory ceiling: how a worker process is made to fail on purpose.

The torture suite (``tests/torture/``) needs a worker to die at instants a
signal sent from outside cannot hit reliably, such as "after the handler
returned, before its outcome is acknowledged". ``CONVEYOR_FAULT_POINT`` names
one such instant and what to do there::

    CONVEYOR_FAULT_POINT=after-run:exit      # the first job whose handler returns: os._exit
    CONVEYOR_FAULT_POINT=after-run:exit:3    # the third one
    CONVEYOR_FAULT_POINT=after-claim:stop    # SIGSTOP itself right after its first claim

Points: ``after-claim`` (a batch was claimed, nothing of it dispatched) and
``after-run`` (a handler returned a result; its outcome not yet handed to the
completer). Actions: ``exit`` (``os._exit(FAULT_EXIT_CODE)``: no clean-up, like
SIGKILL) and ``stop`` (SIGSTOP to itself: a zombie until someone sends SIGCONT).
The variable is read once, when a Worker is built; unset, the only cost is one
``is None`` test per job.

``limit_memory`` is ``conveyor worker --max-memory``: an address-space limit
(RLIMIT_AS) on the worker process. A task that runs into it raises
``MemoryError``; the worker writes the outcomes other jobs already reached and
exits with ``MEMORY_EXIT_CODE``, as the kernel's OOM killer would have ended
it, so the job's lease lapses and the job is retried and, if it keeps doing
that, ends ``failed`` with "worker lost".
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigurationError

log = logging.getLogger("conveyor.worker")

#: The environment variable naming a fault point.
FAULT_POINT_ENV = "CONVEYOR_FAULT_POINT"
#: Exit status of a worker that left at a fault point.
FAULT_EXIT_CODE = 86
#: Exit status of a worker whose task ran into ``--max-memory``.
MEMORY_EXIT_CODE = 87

FaultPointName = Literal["after-claim", "after-run"]
FaultAction = Literal["exit", "stop"]
POINTS: tuple[FaultPointName, ...] = ("after-claim", "after-run")
ACTIONS: tuple[FaultAction, ...] = ("exit", "stop")


@dataclass
class FaultPoint:
    """Where a worker fails on purpose, how, and on which passage (1 = the first)."""

    point: FaultPointName
    action: FaultAction
    on_passage: int = 1
    _passages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def passed(self, point: FaultPointName) -> None:
        """Called at each fault point; acts when this is the configured point and passage."""
        if point != self.point:
            return
        with self._lock:
            self._passages += 1
            if self._passages != self.on_passage:
                return
        log.warning("fault point %s:%s reached (passage %d)", self.point, self.action, self.on_passage)
        if self.action == "exit":
            os._exit(FAULT_EXIT_CODE)
        os.kill(os.getpid(), signal.SIGSTOP)


def parse_fault_point(text: str) -> FaultPoint:
    """``POINT:ACTION[:N]`` as a FaultPoint; ConfigurationError naming what is valid."""
    parts = text.strip().split(":")
    bad = ConfigurationError(
        f"{FAULT_POINT_ENV}={text!r} is not POINT:ACTION[:N] with POINT one of {', '.join(POINTS)}, "
        f"ACTION one of {', '.join(ACTIONS)} and N a passage number >= 1"
    )
    if len(parts) not in (2, 3) or parts[0] not in POINTS or parts[1] not in ACTIONS:
        raise bad
    passage = 1
    if len(parts) == 3:
        if not parts[2].isdigit() or int(parts[2]) < 1:
            raise bad
        passage = int(parts[2])
    point: FaultPointName = "after-claim" if parts[0] == "after-claim" else "after-run"
    action: FaultAction = "exit" if parts[1] == "exit" else "stop"
    return FaultPoint(point, action, passage)


def fault_point_from_environment() -> FaultPoint | None:
    """The fault point ``CONVEYOR_FAULT_POINT`` names, or None when it is unset or empty."""
    text = os.environ.get(FAULT_POINT_ENV, "")
    return parse_fault_point(text) if text.strip() else None


def limit_memory(max_bytes: int) -> None:
    """Cap this process's address space at ``max_bytes`` (RLIMIT_AS, soft and hard)."""
    if max_bytes < 1:
        raise ConfigurationError(f"max_memory must be a positive number of bytes, got {max_bytes!r}")
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def exit_on_memory_error(job_id: str, task: str, flush: Callable[[], object] | None = None) -> None:
    """Leave at once: the task ran into the memory ceiling (the job's lease will lapse).

    ``flush`` first writes the outcomes other jobs already reached (the task's frame,
    and the memory it held, are gone by now), so they do not run again.
    """
    log.critical("job %s (%s) ran into --max-memory: the worker process exits", job_id, task)
    if flush is not None:
        try:
            flush()
        except Exception:
            log.exception("could not write the finished jobs' outcomes before exiting")
    os._exit(MEMORY_EXIT_CODE)
