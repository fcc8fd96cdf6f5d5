"""``POST /api/jobs`` throughput and latency: a real server on loopback, a concurrent httpx client.

    python bench/http_bench.py [--concurrency 32] [--seconds 5] [--url sqlite:///...]

Starts ``conveyor serve`` (SQLite in a temporary directory unless ``--url``) in its
own process, enqueues ``noop`` jobs from ``concurrency`` concurrent requests for
``seconds`` seconds, and prints ``{requests_per_s, p50_ms, p99_ms, ...}`` as JSON.

On a small machine the client competes with the server for CPU: httpx costs about
2 ms of CPU per request, more than the server does. ``--client raw`` drives the
same load from a minimal asyncio HTTP/1.1 client, so the figure is the server's.
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
from typing import Any

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


class RawClient:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams: a load generator that costs little CPU."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """Send one POST; return the status code."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await self.reader.readexactly(length)
        return status

    async def aclose(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()


async def drive(host: str, port: int, concurrency: int, seconds: float, client: str) -> dict[str, float]:
    """Keep ``concurrency`` requests in flight for ``seconds``; latency of each in ms."""
    latencies: list[float] = []
    errors = 0
    body = json.dumps({"task": "noop"}).encode()
    headers = {"x-api-key": API_KEY, "content-type": "application/json"}
    # One client (one connection) per concurrent stream: a single httpx pool shared by 32
    # requests spends its time in pool bookkeeping (encode/httpx#3215), measuring the client.
    clients: list[Any]
    if client == "httpx":
        base = f"http://{host}:{port}"
        clients = [httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) for _ in range(concurrency)]

        async def post(c: Any) -> int:
            return int((await c.post("/api/jobs", content=body, headers=headers)).status_code)
    else:
        clients = [RawClient(host, port) for _ in range(concurrency)]

        async def post(c: Any) -> int:
            return int(await c.post("/api/jobs", body, headers))

    # Connect (and let the server open its store) outside the measurement.
    await asyncio.gather(*(post(c) for c in clients))
    stop_at = time.perf_counter() + seconds

    async def stream(c: Any) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            status = await post(c)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 201:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(stream(c) for c in clients))
    elapsed = time.perf_counter() - began
    await asyncio.gather(*(c.aclose() for c in clients))
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 2)

    return {
        "client": client,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 2),
        "requests": len(latencies),
        "errors": errors,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Parse arguments, run the server and the client, print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--url", help="Backend URL (default: SQLite in a temporary directory).")
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="httpx.AsyncClient per stream, or a minimal asyncio client that leaves the CPU to the server.",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = options.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        port = free_port()
        server = start_server(url, port)
        try:
            cpu_before = cpu_seconds(server.pid)
            result = asyncio.run(
                drive("127.0.0.1", port, options.concurrency, options.seconds, options.client)
            )
            cpu_after = cpu_seconds(server.pid)
            if cpu_before is not None and cpu_after is not None:
                # Includes the warm-up requests (one per stream): a slight overestimate.
                spent_ms = (cpu_after - cpu_before) * 1000
                requests = result["requests"] + options.concurrency
                result["server_cpu_ms_per_request"] = round(spent_ms / requests, 3)
        finally:
            server.terminate()
            server.wait(30)
    print(json.dumps({"backend": url.split(":", 1)[0], **result}))


if __name__ == "__main__":
    main()
