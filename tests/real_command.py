"""Run the installed ``conveyor`` command as a user would, on this checkout's package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import conveyor


def conveyor_command() -> list[str]:
    """The installed ``conveyor`` script beside this interpreter (else ``python -m conveyor``)."""
    script = Path(sys.executable).parent / "conveyor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "conveyor"]


def command_env(**extra: str) -> dict[str, str]:
    """The environment of a real run: this checkout's package first, no URL, width or traceback flag."""
    source = str(Path(conveyor.__file__).resolve().parents[1])
    unset = ("CONVEYOR_URL", "COLUMNS", "CONVEYOR_TRACEBACK")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run_conveyor(*args: str, cwd: Path, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS`` in ``cwd``, its output captured as text."""
    return subprocess.run(
        [*conveyor_command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=command_env(**env),
        timeout=timeout,
    )
