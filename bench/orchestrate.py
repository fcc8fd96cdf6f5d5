"""Run driver sessions as subprocesses and collect their results (for ``bench.run`` and ``bench.compare``).

Conveyor's sessions run in this interpreter's venv; the peers' in the peers venv
(``.venv-peers``), so no peer is ever installed next to Conveyor.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .peers.base import make_tag
from .peers.harness import WORKLOAD_SESSION
from .peers.systems import SYSTEMS
from .stores import drop_store, namespace_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
DEFAULT_REDIS = os.environ.get("BENCH_REDIS_BASE", "redis://127.0.0.1:6379")
DEFAULT_PG = os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

WORKLOADS = ("enqueue", "drain", "latency", "io", "retry")
#: The issue's sizes, shared by ``bench.run`` and ``bench.compare``; ``cap_s`` caps a slow drain.
FULL_SIZES: dict[str, Any] = {
    "drain": 20000,
    "latency": 500,
    "latency_rate": 100,
    "io": 10000,
    "retry": 2000,
    "cap_s": 10.0,
}
#: (key in the session result, metric, True when higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "enqueue": ("enqueue", "jobs_per_s", True),
    "drain": ("drain", "jobs_per_s", True),
    "latency": ("latency", "p50_ms", False),
    "latency_p99": ("latency", "p99_ms", False),
    "io": ("io", "jobs_per_s", True),
    "retry": ("retry", "jobs_per_s", True),
}


def reachable(url: str, default_port: int) -> bool:
    """True when something listens at the URL's host and port."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 1).close()
    except OSError:
        return False
    return True


def pick_redis_db(base: str) -> str | None:
    """The URL of an empty Redis database (15 down to 8), so flushing it after a session harms nobody."""
    if not reachable(base, 6379):
        return None
    try:
        import redis
    except ImportError:
        return None
    for db in range(15, 7, -1):
        client = redis.Redis.from_url(f"{base.rstrip('/')}/{db}")
        try:
            if client.dbsize() == 0:
                return f"{base.rstrip('/')}/{db}"
        finally:
            client.close()
    return None


def sessions_for(workloads: Iterable[str]) -> list[str]:
    """The sessions that measure ``workloads``, in a stable order."""
    wanted = {WORKLOAD_SESSION[w] for w in workloads}
    return [s for s in ("throughput", "latency", "io", "retry") if s in wanted]


def run_session(
    python: str,
    system: str,
    session: str,
    sizes: dict[str, Any],
    redis_url: str,
    pg_dsn: str,
    timeout: float = 900.0,
    describe: bool = False,
) -> dict[str, Any]:
    """One driver subprocess; its JSON report (with ``error`` set when it failed).

    The driver removes its session's store; when it is killed at ``timeout`` it cannot,
    so a Conveyor session's namespace is dropped here (bench.stores).
    """
    tag = make_tag("bench", system, session, str(os.getpid()), secrets.token_hex(3))
    command = [
        python, "-m", "bench.peers.driver", system, session,
        "--sizes", json.dumps(sizes), "--redis-url", redis_url, "--pg-dsn", pg_dsn, "--tag", tag,
    ]  # fmt: skip
    if describe:
        command.append("--describe")
    # This tree's source first: the venv's installed conveyor may be another checkout's.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        engine = SYSTEMS[system].engine
        if system.startswith("conveyor-") and engine != "sqlite":  # SQLite's files go with the driver's tmp
            drop_store(namespace_url(engine, tag, redis_url, pg_dsn, Path(".")))
        return {"system": system, "session": session, "error": f"driver timed out after {timeout:.0f}s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        return {"system": system, "session": session, "error": f"driver exited {done.returncode}: {tail}"}
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def metric(result: dict[str, Any], workload: str) -> float | None:
    """One workload's headline figure from a session result, or None."""
    section, key, _ = METRICS[workload]
    value = result.get(section, {}).get(key)
    if section == "retry" and result.get("retry", {}).get("completed") != result.get("retry", {}).get("jobs"):
        return None  # a retry run that lost jobs has no rate
    return float(value) if value is not None else None


def median_or_none(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def machine_info() -> dict[str, Any]:
    """Cores, CPU, memory, OS and Python: what a reader needs to compare figures."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return info


def source_state() -> dict[str, Any]:
    """The commit Conveyor was measured at, and whether src/ had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "src_modified": bool(dirty)}


def server_versions(redis_url: str | None, pg_dsn: str) -> dict[str, str]:
    """Versions of the Redis and PostgreSQL servers used."""
    found: dict[str, str] = {}
    if redis_url:
        try:
            import redis

            client = redis.Redis.from_url(redis_url)
            found["redis-server"] = str(client.info("server")["redis_version"])
            client.close()
        except Exception as exc:  # noqa: BLE001 - informational only
            found["redis-server"] = f"unknown ({type(exc).__name__})"
    if reachable(pg_dsn, 5432):
        try:
            import psycopg

            with psycopg.connect(pg_dsn) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                found["postgresql"] = str(row[0]) if row else "unknown"
        except Exception as exc:  # noqa: BLE001 - informational only
            found["postgresql"] = f"unknown ({type(exc).__name__})"
    return found


def available(system: str, redis_url: str | None, pg_dsn: str, peers_python: Path) -> str | None:
    """Why ``system`` cannot run here, or None when it can."""
    spec = SYSTEMS[system]
    if not spec.is_conveyor and not peers_python.exists():
        return f"no peers venv at {peers_python} (make bench-peers creates it)"
    if spec.engine == "redis" and redis_url is None:
        return "no Redis server (or no empty database 8-15) on 127.0.0.1:6379"
    if spec.engine == "postgres" and not reachable(pg_dsn, 5432):
        return "no PostgreSQL server"
    return None


def log(message: str) -> None:
    """Progress on stderr, with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
