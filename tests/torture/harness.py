"""Worker processes for the torture scenarios: start (optionally skewed, or in a namespace), kill, stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from process.harness import ProcessGroup

TESTS = Path(__file__).resolve().parent.parent
SRC = TESTS.parent / "src"
LONG = os.environ.get("CONVEYOR_TORTURE", "short") == "long"


def scale(short: int | float, long: int | float) -> int | float:
    """The short form's parameter, or the long form's under ``CONVEYOR_TORTURE=long``."""
    return long if LONG else short


@dataclass
class Workers(ProcessGroup):
    """``conveyor worker torture.workload:app`` processes sharing one execution-log directory."""

    url: str
    log_dir: Path
    concurrency: int = 5
    lease: float = 2.0
    extra: Sequence[str] = ()

    #: Every process any Workers started, so a failed scenario leaves none behind.
    started: ClassVar[list[subprocess.Popen[bytes]]] = []

    @classmethod
    def kill_strays(cls) -> None:
        """SIGKILL every process started by any Workers that still runs (or is stopped)."""
        for proc in cls.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        cls.started.clear()

    def __post_init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills = 0
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def env(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "CONVEYOR_URL": self.url,
            "TORTURE_LOG_DIR": str(self.log_dir),
            "TORTURE_LEASE": str(self.lease),
            "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC), os.environ.get("PYTHONPATH", "")]),
            **(overrides or {}),
        }

    def start(
        self,
        *extra: str,
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
        concurrency: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """One more worker process; ``prefix`` wraps the command (e.g. ``ip netns exec NS``)."""
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "conveyor",
            "worker",
            "torture.workload:app",
            "--concurrency",
            str(concurrency or self.concurrency),
            "--log-level",
            "warning",
            *self.extra,
            *extra,
        ]
        log = open(self.log_dir / f"stderr-{len(self.procs)}.txt", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, env=self.env(env), cwd=str(TESTS), stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        self.procs.append(proc)
        Workers.started.append(proc)
        return proc

    def stderr(self) -> str:
        """Everything the processes wrote to stderr (for assertion messages)."""
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(self.log_dir.glob("stderr-*")))


def wait_until(predicate: object, timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll a zero-argument callable until truthy; AssertionError naming ``what`` on timeout."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last value {value!r}")
        time.sleep(interval)
