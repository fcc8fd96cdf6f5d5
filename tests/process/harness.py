"""Real worker processes for crash and shutdown tests: start, kill, count executions."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


class ProcessGroup:
    """Worker processes started by a harness: which still run, SIGKILL one, SIGTERM them all."""

    procs: list[subprocess.Popen[bytes]]
    kills: int

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL, and wait for it to be gone."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.kills += 1

    def stop_all(self, timeout: float = 60) -> list[int]:
        """SIGTERM every live process (SIGCONT first, in case one is stopped); their exit codes."""
        for proc in self.alive():
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


class WorkerProcesses(ProcessGroup):
    """``conveyor worker process.crashapp:app`` processes with their own log directory."""

    def __init__(
        self,
        url: str,
        log_dir: Path,
        concurrency: int = 5,
        extra: tuple[str, ...] = (),
        *,
        app_path: str = "process.crashapp:app",
        environment: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.app_path = app_path
        self.environment = dict(environment or {})
        self.log_dir = log_dir
        self.concurrency = concurrency
        self.extra = extra
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills = 0

    def env(self) -> dict[str, str]:
        src = str(HERE.parent.parent / "src")
        return {
            **os.environ,
            "CONVEYOR_URL": self.url,
            "CRASH_LOG_DIR": str(self.log_dir),
            "PYTHONPATH": os.pathsep.join([str(HERE.parent), src, os.environ.get("PYTHONPATH", "")]),
            **self.environment,
        }

    def start(self) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", "conveyor", "worker", self.app_path,
            "--concurrency", str(self.concurrency), "--log-level", "warning", *self.extra,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, env=self.env(), cwd=str(HERE.parent), stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def executions(self) -> collections.Counter[int]:
        """How many times each job number ran, across every process ever started."""
        counts: collections.Counter[int] = collections.Counter()
        for log in self.log_dir.glob("*.log"):
            for line in log.read_text().splitlines():
                if line.strip():
                    counts[int(line.split()[0])] += 1
        return counts
