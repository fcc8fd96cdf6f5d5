"""The README's short tour, followed line by line in an empty directory, as a new user would.

``tasks.py`` is written from the README's code block, the shell lines run through the
installed ``conveyor`` command, the Python block runs with the venv's python. Only two
things differ from a terminal: ``ID`` becomes a real job id, and ``serve`` gets a free port.
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from real_command import command_env, conveyor_command, run_conveyor

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
#: Commands that run until stopped: started in the background, checked, then stopped.
LONG_RUNNING = ("worker", "serve")


def tour_blocks() -> list[tuple[str, str]]:
    text = README.read_text()
    section = text[text.index("## A short tour") :]
    section = section[: section.index("\n## ", 1)]
    return BLOCK.findall(section)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shell_lines(block: str) -> list[list[str]]:
    """Each command line of a shell block as arguments (comments dropped)."""
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c]


def answers(port: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).close()
            return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            time.sleep(0.2)
    return False


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    blocks = tour_blocks()
    assert [kind for kind, _ in blocks] == ["python", "sh", "python", "sh"]
    (_, tasks), (_, start_worker), (_, producer), (_, admin) = blocks
    assert tasks.startswith("# tasks.py\n")
    (tmp_path / "tasks.py").write_text(tasks)
    (tmp_path / "tour.py").write_text(producer)
    env = command_env()

    [worker_line] = shell_lines(start_worker)
    assert worker_line[:2] == ["conveyor", "worker"]
    worker = subprocess.Popen(
        [*conveyor_command(), *worker_line[1:]], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        tour = subprocess.run(
            [sys.executable, "tour.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert tour.returncode == 0, tour.stderr
        printed = tour.stdout.splitlines()
        assert printed[0] == "sent 'Welcome' to a@example.com"
        assert printed[1] == "completed"
        assert "failed: Permanent: mailbox closed" in printed[2]
        assert re.fullmatch(r"\['[0-9a-f]{32}'\]", printed[3])

        job_id = printed[3][2:-2]
        for line in shell_lines(admin):
            assert line[0] == "conveyor"
            args = [job_id if word == "ID" else word for word in line[1:]]
            if args[0] in LONG_RUNNING:
                port = free_port()
                args[args.index("--port") + 1] = str(port)
                server = subprocess.Popen([*conveyor_command(), *args], cwd=tmp_path, env=env)
                try:
                    assert answers(port), f"conveyor {shlex.join(args)} did not answer"
                finally:
                    server.terminate()
                    server.wait(15)
                continue
            proc = run_conveyor(*args, cwd=tmp_path)
            assert proc.returncode == 0, (args, proc.stderr)
            assert "Error" not in proc.stderr and "Traceback" not in proc.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        _, worker_log = worker.communicate(timeout=30)
    assert worker.returncode == 0, worker_log
    assert "Traceback" not in worker_log
