"""``POST /api/jobs`` throughput and latency: a real server on loopback, a concurrent httpx client.

    python bench/http_bench.py [--concurrency 32] [--seconds 5] [--url sqlite:///...]

Starts ``conveyor serve`` (SQLite in a temporary directory unless ``--url``) in its
own process, enqueues ``noop`` jobs from ``concurrency`` concurrent requests for
``seconds`` seconds, and prints ``{requests_per_s, p50_ms, p99_ms, ...}`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key-0123456789abcdef"


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    """``conveyor serve bench.benchapp:app`` on loopback; returns once /healthz answers."""
    env = {
        **os.environ,
        "CONVEYOR_URL": url,
        "CONVEYOR_API_KEYS": API_KEY,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "conveyor", "serve", "bench.benchapp:app", "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning"], env=env, cwd=ROOT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not answer /healthz within 20s")


async def drive(base: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Keep ``concurrency`` requests in flight for ``seconds``; latency of each in ms."""
    latencies: list[float] = []
    errors = 0
    body = json.dumps({"task": "noop"}).encode()
    headers = {"x-api-key": API_KEY, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        # Warm up the connections (and the server's first transaction) outside the measurement.
        await asyncio.gather(
            *(client.post("/api/jobs", content=body, headers=headers) for _ in range(concurrency))
        )
        stop_at = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                response = await client.post("/api/jobs", content=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 201:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 2)

    return {
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 2),
        "requests": len(latencies),
        "errors": errors,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    """Parse arguments, run the server and the client, print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--url", help="Backend URL (default: SQLite in a temporary directory).")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = options.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        port = free_port()
        server = start_server(url, port)
        try:
            result = asyncio.run(drive(f"http://127.0.0.1:{port}", options.concurrency, options.seconds))
        finally:
            server.terminate()
            server.wait(30)
    print(json.dumps({"backend": url.split(":", 1)[0], **result}))


if __name__ == "__main__":
    main()
