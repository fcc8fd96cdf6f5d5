"""Worker start-up: seconds from spawning ``conveyor worker APP --burst`` to its first job's start.

    python -m bench.startup [--backends sqlite,postgres,redis] [--spawns 5] [--processes 1]

Each spawn gets an empty store holding one job whose task writes ``time.time()`` to a
file; the figure is that time minus the moment just before the worker was spawned, so it
covers the interpreter, the imports, loading APP, opening the backend and the first claim.
With ``--processes 2`` the supervisor spawns the children, as in production. ``make bench``
(bench.run) reports the median of a few spawns per backend, with a bytecode cache (in
a private PYTHONPYCACHEPREFIX) as a deployment has; ``--cold`` compiles every time.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .orchestrate import this_source_path
from .stores import scratch_store

ROOT = Path(__file__).resolve().parent.parent
#: The App the spawned workers load; its one task marks the moment it started.
APP = "bench.startupapp:app"


def spawn_to_first_job(
    url: str, processes: int = 1, timeout: float = 60.0, pycache: str | None = None
) -> float:
    """Seconds from spawning a burst worker on ``url`` (holding one job) to that job's start.

    With ``pycache`` (a directory), compiled bytecode is kept there, as an installed
    package has it; without, the environment decides (PYTHONDONTWRITEBYTECODE).
    """
    from . import startupapp

    with tempfile.TemporaryDirectory() as tmp:
        mark = Path(tmp) / "started"
        app = startupapp.make_app(url)
        try:
            app.backend.migrate()
            app.enqueue(startupapp.MARK_TASK, [str(mark)])
        finally:
            app.close()
        env = {**os.environ, "PYTHONPATH": this_source_path(), "CONVEYOR_URL": url}
        if pycache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pycache
        command = [sys.executable, "-m", "conveyor", "worker", APP, "--burst", "--log-level", "warning"]
        if processes > 1:
            command += ["--processes", str(processes)]
        errors = (Path(tmp) / "stderr").open("w+")  # a file, not a pipe: nobody reads while it runs
        spawned = time.time()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            deadline = time.monotonic() + timeout
            while not mark.exists() or not mark.read_text():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no job started within {timeout:.0f}s")
                if child.poll() is not None and not mark.exists():
                    errors.seek(0)
                    error = errors.read()
                    raise RuntimeError(f"worker exited {child.returncode} before its job: {error[-2000:]}")
                time.sleep(0.002)
            started = float(mark.read_text())
        finally:
            if child.poll() is None:
                child.terminate()  # done measuring; a supervisor passes it on to its processes
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            errors.close()
        return started - spawned


def measure(base_url: str, spawns: int = 5, processes: int = 1, *, warm: bool = True) -> dict[str, Any]:
    """The median (and each) start-up over ``spawns`` burst workers, each on a fresh store.

    ``warm``: with a bytecode cache (filled by one spawn first, not counted), as a
    deployment has; otherwise every spawn compiles Conveyor's source anew.
    """
    seconds = []
    quiet = logging.getLogger("conveyor")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # this process only fills stores: no server advice per store
    try:
        with tempfile.TemporaryDirectory() as pycache:
            if warm:
                with scratch_store(base_url) as url:
                    spawn_to_first_job(url, processes, pycache=pycache)
            for _ in range(spawns):
                with scratch_store(base_url) as url:
                    seconds.append(spawn_to_first_job(url, processes, pycache=pycache if warm else None))
    finally:
        quiet.setLevel(level)
    return {
        "processes": processes,
        "bytecode_cache": warm,
        "spawns": spawns,
        "median_s": round(statistics.median(seconds), 3),
        "each_s": [round(s, 3) for s in seconds],
    }


def base_urls(redis_url: str, pg_dsn: str, sqlite_dir: Path) -> dict[str, str]:
    """Where each backend's scratch stores go."""
    return {"sqlite": f"sqlite:///{sqlite_dir / 'startup.db'}", "postgres": pg_dsn, "redis": redis_url}


def main(argv: list[str] | None = None) -> int:
    """Print the start-up figure for each backend asked for."""
    from .orchestrate import DEFAULT_PG, reachable

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    parser.add_argument("--spawns", type=int, default=5)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="no bytecode cache: every spawn compiles")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    with tempfile.TemporaryDirectory() as tmp:
        urls = base_urls(redis_url, DEFAULT_PG, Path(tmp))
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            url = urls[backend]
            if backend != "sqlite" and not reachable(url, 6379 if backend == "redis" else 5432):
                print(f"{backend:<9} not reachable")
                continue
            got = measure(url, args.spawns, args.processes, warm=not args.cold)
            each = " ".join(f"{s:.3f}" for s in got["each_s"])
            print(f"{backend:<9} spawn to first job: median {got['median_s']:.3f}s ({each})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
