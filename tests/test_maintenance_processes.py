"""Schedules and alerts across real worker processes: one job per tick, one POST per window.

Each test starts ``conveyor worker process.scheduleapp:app`` processes on a shared
backend (SQLite file, PostgreSQL schema, Redis prefix); memory:// is per-process and
runs the in-process versions of these checks in the conformance suite instead.
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor.testing.helpers import wait_for
from process.harness import WorkerProcesses

SECRET = "alert-test-secret"


@contextmanager
def workers(url: str, tmp_path: Path, n: int) -> Iterator[WorkerProcesses]:
    procs = WorkerProcesses(
        url,
        tmp_path,
        concurrency=4,
        app_path="process.scheduleapp:app",
        environment={"CONVEYOR_SIGNING_SECRET": SECRET},
    )
    for _ in range(n):
        procs.start()
    try:
        yield procs
    finally:
        codes = procs.stop_all()
        assert all(code == 0 for code in codes), f"a worker exited badly: {codes}"


def _ticks(app: conveyor.App) -> list[float]:
    jobs = app.jobs(task="tick", limit=1000)
    return sorted(job.scheduled_for.timestamp() for job in jobs if job.scheduled_for is not None)


@pytest.mark.processes
@pytest.mark.parametrize("n", [2, 3])
def test_worker_processes_enqueue_every_tick_once(backend_url: str, tmp_path: Path, n: int) -> None:
    app = conveyor.App(backend_url)
    app.declare("tick")
    with workers(backend_url, tmp_path, n):
        # Six ticks while every process runs: enough for a race to show, short on a busy machine.
        wait_for(lambda: len(_ticks(app)) >= 7, timeout=60, interval=0.2)
    ticks = _ticks(app)
    duplicates = [t for t, count in Counter(ticks).items() if count > 1]
    assert not duplicates, f"ticks enqueued twice: {duplicates}"
    # None skipped between the first tick and the last (those two are the tolerance).
    gaps = [(a, b) for a, b in itertools.pairwise(ticks) if b - a != 1.0]
    assert not gaps, f"ticks skipped while workers ran: {gaps} in {ticks}"
    assert all(job.schedule == "tick" for job in app.jobs(task="tick", limit=1000))


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[float, bytes, str | None]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((time.monotonic(), body, self.headers.get("X-Conveyor-Signature")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[float, bytes, str | None]]]]:
    received: list[tuple[float, bytes, str | None]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/conveyor", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.processes
def test_three_workers_post_one_signed_alert_per_window(backend_url: str, tmp_path: Path) -> None:
    app = conveyor.App(backend_url)
    app.declare("boom", max_attempts=1)
    window = 3.0
    with receiver() as (url, received), workers(backend_url, tmp_path, 3):
        app.alert("ops", url=url, threshold=3, window=window)
        first = [app.enqueue("boom") for _ in range(3)]
        wait_for(lambda: len(received) >= 1, timeout=60, interval=0.05)
        # More failures inside the same window: no second POST until the window has passed.
        second = [app.enqueue("boom") for _ in range(3)]
        wait_for(lambda: len(received) >= 2, timeout=60, interval=0.05)
        notes = app.jobs(task="conveyor.http", limit=100)
        wait_for(lambda: all(job.refresh().state == "completed" for job in notes), timeout=30)
    assert app.jobs(task="conveyor.http").total == 2, "one notification job per window, whatever the workers"
    assert len(received) == 2
    (t1, body1, sig1), (t2, body2, sig2) = received
    assert t2 - t1 >= window - 0.5, f"two POSTs {t2 - t1:.2f}s apart within a {window}s window"
    for body, signature in ((body1, sig1), (body2, sig2)):
        assert conveyor.verify_signature(body, signature, SECRET)
    one, two = json.loads(body1), json.loads(body2)
    assert set(one) == {"alert", "queue", "failed", "window", "job_ids", "text"}
    assert one["alert"] == "ops" and one["queue"] is None and one["window"] == "3s"
    assert one["failed"] >= 3 and set(one["job_ids"]) >= {job.id for job in first}
    assert set(two["job_ids"]) >= {job.id for job in second}
