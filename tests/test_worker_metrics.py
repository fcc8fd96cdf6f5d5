"""Worker metrics: every metric of the contract checked against what ran, through a real scrape."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import conveyor
from conveyor.testing.helpers import final_state, running_worker, wait_for
from conveyor.worker.metrics import WorkerMetrics, serve

HERE = Path(__file__).parent
SECRET = "s3cr3t-argument-value"

#: Every label value a scrape may carry for the jobs below: names, never payloads.
ALLOWED_LABEL_VALUES = {
    "obs",
    "batch",
    "ok",
    "flaky",
    "bad",
    "completed",
    "failed",
    "retry",
    "cancelled",
    "released",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """The worker's /metrics as {(sample name, sorted labels): value}, conveyor_* only."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("conveyor_"):
                samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def check_counts(samples: Samples, n_ok: int, n_flaky: int, n_bad: int) -> None:
    """The contract's counters count attempts: a job that fails once then succeeds adds 2 starts."""
    assert value(samples, "conveyor_jobs_started_total", queue="obs", task="ok") == n_ok
    assert value(samples, "conveyor_jobs_started_total", queue="obs", task="flaky") == 2 * n_flaky
    assert value(samples, "conveyor_jobs_started_total", queue="batch", task="bad") == n_bad
    finished = "conveyor_jobs_finished_total"
    assert value(samples, finished, queue="obs", task="ok", outcome="completed") == n_ok
    assert value(samples, finished, queue="obs", task="flaky", outcome="retry") == n_flaky
    assert value(samples, finished, queue="obs", task="flaky", outcome="completed") == n_flaky
    assert value(samples, finished, queue="batch", task="bad", outcome="failed") == n_bad
    for task, queue, attempts in (
        ("ok", "obs", n_ok),
        ("flaky", "obs", 2 * n_flaky),
        ("bad", "batch", n_bad),
    ):
        labels = {"queue": queue, "task": task}
        assert value(samples, "conveyor_job_duration_seconds_count", **labels) == attempts
        assert value(samples, "conveyor_job_wait_seconds_count", **labels) == attempts
        assert value(samples, "conveyor_job_duration_seconds_bucket", le="+Inf", **labels) == attempts
    # ok sleeps 10 ms: its total run time is at least that much per job.
    assert value(samples, "conveyor_job_duration_seconds_sum", queue="obs", task="ok") >= 0.009 * n_ok
    assert value(samples, "conveyor_leases_lost_total", queue="obs") == 0
    for (_name, labels), _v in samples.items():
        for label, label_value in labels:
            if label in ("queue", "task", "outcome"):
                assert label_value in ALLOWED_LABEL_VALUES, (label, label_value)
            assert SECRET not in label_value


def enqueue_mix(app: conveyor.App, n_ok: int, n_flaky: int, n_bad: int) -> list[conveyor.Job]:
    jobs = [app.enqueue("ok", args=[i], kwargs={"secret": SECRET}) for i in range(n_ok)]
    jobs += [app.enqueue("flaky", args=[i]) for i in range(n_flaky)]
    jobs += [app.enqueue("bad", args=[i]) for i in range(n_bad)]
    return jobs


def register_tasks(app: conveyor.App) -> None:
    """The tasks of tests/process/obsapp.py, on the fixture's App."""
    import time

    @app.task(queue="obs")
    def ok(n: int, secret: str = "") -> int:
        time.sleep(0.01)
        return n

    @app.task(queue="obs", max_attempts=3, backoff=conveyor.backoff.fixed(0))
    def flaky(n: int) -> int:
        if conveyor.current_job().attempt == 1:
            raise ConnectionError(f"transient failure of {n}")
        return n

    @app.task(queue="batch")
    def bad(n: int) -> None:
        raise conveyor.Permanent(f"bad input {n}")


def test_every_metric_counts_what_ran_in_one_process(app: conveyor.App) -> None:
    register_tasks(app)
    metrics = WorkerMetrics()
    port = free_port()
    server = serve(metrics, port, "127.0.0.1")
    try:
        jobs = enqueue_mix(app, 12, 5, 3)
        with running_worker(app, queues=["obs", "batch"], concurrency=4, metrics=metrics) as worker:
            for job in jobs:
                final_state(job, timeout=30)
            assert worker.wait_until_idle(10)
            samples = scrape(port)
            assert value(samples, "conveyor_worker_slots") == 4
        check_counts(samples, 12, 5, 3)
    finally:
        server.shutdown()


def test_busy_slots_and_starts_show_while_a_job_runs(app: conveyor.App) -> None:
    gate: list[bool] = []

    @app.task()
    def hold() -> None:
        wait_for(lambda: gate, timeout=30)

    metrics = WorkerMetrics()
    port = free_port()
    server = serve(metrics, port, "127.0.0.1")
    try:
        with running_worker(app, concurrency=2, metrics=metrics) as worker:
            job = hold.enqueue()
            wait_for(lambda: value(scrape(port), "conveyor_worker_busy_slots") == 1, timeout=10)
            samples = scrape(port)
            assert value(samples, "conveyor_jobs_started_total", queue="default", task="hold") == 1
            assert (
                value(
                    samples, "conveyor_jobs_finished_total", queue="default", task="hold", outcome="completed"
                )
                == 0
            )
            gate.append(True)
            assert final_state(job) == "completed"
            assert worker.wait_until_idle(10)
            wait_for(lambda: value(scrape(port), "conveyor_worker_busy_slots") == 0, timeout=10)
    finally:
        server.shutdown()


# -- one port for the whole worker: --processes 2 ------------------------------------------
@pytest.fixture
def supervised_worker(backend_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        **os.environ,
        "CONVEYOR_URL": backend_url,
        "CONVEYOR_METRICS_PORT": str(port),
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    cmd = [
        sys.executable, "-m", "conveyor", "worker", "process.obsapp:app", "--queues", "obs,batch",
        "--processes", "2", "--concurrency", "3", "--log-level", "warning", "--metrics-host", "127.0.0.1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=str(HERE))
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.processes
def test_every_metric_through_one_port_of_a_worker_with_two_processes(
    backend_url: str, supervised_worker: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = supervised_worker
    producer = conveyor.App(backend_url)
    producer.declare("ok", queue="obs")
    producer.declare("flaky", queue="obs")
    producer.declare("bad", queue="batch")
    try:
        jobs = enqueue_mix(producer, 30, 8, 4)
        for job in jobs:
            final_state(job, timeout=60)

        def settled() -> Samples | None:
            try:
                samples = scrape(port)
            except httpx.HTTPError:
                return None
            done = sum(v for (name, _), v in samples.items() if name == "conveyor_jobs_finished_total")
            return samples if done == 30 + 2 * 8 + 4 else None

        samples = wait_for(settled, timeout=30)
        check_counts(samples, 30, 8, 4)
        # Both children count: the slots of the whole worker are 2 x 3.
        assert wait_for(lambda: value(scrape(port), "conveyor_worker_slots") == 6, timeout=10)
        assert len(_children(proc.pid)) == 2
    finally:
        producer.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in out.split()]
