"""Run the shell block of an example's README as a user would: line by line, in a copy of the example.

``export`` lines set the environment of later lines; a line ending in ``&`` starts a
process that keeps running (a worker, a server) and, when it names ``--port N``, runs
on a free port instead, which every later line's ``:N`` follows; ``ID`` in a line is
replaced by the last job id an earlier line printed. The venv's scripts come first
on ``PATH`` and this checkout's package first on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from real_command import command_env

BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
JOB_ID = re.compile(r"[0-9a-f]{32}")


def shell_block(readme: Path) -> list[str]:
    """The command lines of the README's first ``sh`` block (comment lines dropped)."""
    [block, *_] = BLOCK.findall(readme.read_text())
    return [line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int, timeout: float = 20.0) -> bool:
    """True once something answers HTTP on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.1)
    return False


class ReadmeRun:
    """The state of one README run: environment, ports, background processes, outputs."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.ports: dict[str, str] = {}
        self.background: list[subprocess.Popen[str]] = []
        self.outputs: list[tuple[str, str]] = []
        self.last_id: str | None = None
        #: What each background process printed, once stopped.
        self.logs: list[str] = []

    def _expand(self, line: str) -> str:
        for written, real in self.ports.items():
            line = line.replace(f":{written}", f":{real}").replace(f"--port {written}", f"--port {real}")
        if self.last_id is not None:
            line = re.sub(r"\bID\b", self.last_id, line)
        return line

    def run(self, line: str) -> None:
        if line.startswith("export "):
            for assignment in shlex.split(line)[1:]:
                name, _, value = assignment.partition("=")
                self.env[name] = value
            return
        if line.endswith("&"):
            command = line[:-1].strip()
            port = re.search(r"--port (\d+)", command)
            if port:
                self.ports[port.group(1)] = str(free_port())
            command = self._expand(command)
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.cwd,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            self.background.append(proc)
            if port and not answers(int(self.ports[port.group(1)])):
                self.stop()
                raise AssertionError(f"{command!r} did not answer; it printed:\n{self.logs[-1]}")
            return
        command = self._expand(line)
        done = subprocess.run(
            ["bash", "-c", command], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        self.outputs.append((command, done.stdout))
        found = JOB_ID.findall(done.stdout)
        if found:
            self.last_id = found[-1]

    def stop(self) -> None:
        """SIGTERM every background process and keep what each printed in ``logs``."""
        logs = self.logs
        for proc in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
            logs.append(out)


@contextmanager
def readme_run(example: Path, tmp_path: Path, **env: str) -> Iterator[ReadmeRun]:
    """Copy ``example`` into ``tmp_path`` and yield a runner for its README's lines there."""
    cwd = tmp_path / example.name
    shutil.copytree(example, cwd, ignore=shutil.ignore_patterns("__pycache__", "*.db*"))
    environment = command_env(**env)
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    run = ReadmeRun(cwd, environment)
    try:
        yield run
    finally:
        run.stop()
