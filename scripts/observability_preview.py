"""Draw the Grafana dashboard's panels from a real run, queried from a real Prometheus.

    python scripts/observability_preview.py [--seconds 120] [--out docs/img/observability-preview.svg]

Starts ``conveyor worker --processes 2 --metrics-port`` and ``conveyor serve`` on a
SQLite file, a Prometheus (Debian's ``prometheus``) scraping both every second, and a
producer enqueueing a mix of jobs (fast ones, slow reports, transient and permanent
failures) in waves. Then it evaluates every panel of deploy/grafana/conveyor.json with
Prometheus's own query_range API (Grafana's ``$__rate_interval`` as 15 s, ``$queue``
as every queue) and draws the answers as one SVG: the same queries, the same data
a Grafana would show, without a Grafana (none is packaged for Debian).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "conveyor.json"

APP = """
import os, random, time
import conveyor

app = conveyor.App(os.environ["CONVEYOR_URL"], lease=3.0)

@app.task(queue="emails", max_attempts=3, backoff=conveyor.backoff.fixed(1))
def send_email(n: int) -> None:
    time.sleep(random.uniform(0.005, 0.03))
    roll = random.random()
    if roll < 0.02:
        raise conveyor.Permanent("mailbox does not exist")
    if roll < 0.12 and conveyor.current_job().attempt == 1:
        raise ConnectionError("smtp timeout")

@app.task(queue="reports", max_attempts=2)
def build_report(n: int) -> None:
    job = conveyor.current_job()
    steps = random.randint(4, 12)
    for i in range(steps):
        time.sleep(random.uniform(0.05, 0.15))
        job.progress((i + 1) / steps, f"{i + 1} of {steps} parts")

@app.task(queue="webhooks", max_attempts=4, backoff=conveyor.backoff.fixed(2))
def deliver(n: int) -> None:
    time.sleep(random.uniform(0.01, 0.2))
    if random.random() < 0.25:
        raise ConnectionError("receiver answered 503")
"""

PALETTE = ["#1f77b4", "#d9480f", "#2f9e44", "#7048e8", "#e67700", "#0c8599", "#c2255c", "#495057"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def query_range(prom: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{params}", timeout=30) as answer:
        data = json.loads(answer.read())
    if data["status"] != "success":
        raise RuntimeError(f"{expr}: {data}")
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def legend(template: str | None, labels: dict[str, str]) -> str:
    if not template:
        return ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def fmt(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value:.0%}"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    if unit == "ops":
        return f"{value:.1f}/s"
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2f}"


def draw(panels: list[dict[str, Any]], answers: dict[int, list[tuple[str, list[tuple[float, float]]]]],
         start: float, end: float, title: str) -> str:  # fmt: skip
    scale = 40  # pixels per grid unit (Grafana's grid is 24 wide, panels h in 30 px rows)
    width = 24 * scale + 20
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) * 30 + 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#111217"/>',
        f'<text x="10" y="24" fill="#d8d9da" font-size="16">{escape(title)}</text>',
    ]
    for panel in panels:
        g = panel["gridPos"]
        x, y = 10 + g["x"] * scale, 40 + g["y"] * 30
        w, h = g["w"] * scale - 8, g["h"] * 30 - 8
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3" fill="#181b1f" stroke="#2c3235"/>')
        out.append(
            f'<text x="{x + 8}" y="{y + 16}" fill="#d8d9da" font-size="12">{escape(panel["title"])}</text>'
        )
        series = answers.get(panel["id"], [])
        if panel["type"] == "stat":
            last = next((pts[-1][1] for _name, pts in series if pts), None)
            text = "no data" if last is None else fmt(last, unit)
            out.append(
                f'<text x="{x + w / 2}" y="{y + h / 2 + 14}" fill="#73bf69" font-size="30" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
            continue
        px, py, pw, ph = x + 50, y + 26, w - 60, h - 64
        values = [v for _n, pts in series for _t, v in pts]
        top = max(values) if values else 1.0
        top = top * 1.1 if top > 0 else 1.0
        out.append(f'<line x1="{px}" y1="{py + ph}" x2="{px + pw}" y2="{py + ph}" stroke="#2c3235"/>')
        for frac in (0.0, 0.5, 1.0):
            ty = py + ph - frac * ph
            out.append(f'<line x1="{px}" y1="{ty}" x2="{px + pw}" y2="{ty}" stroke="#202226"/>')
            out.append(
                f'<text x="{px - 4}" y="{ty + 4}" fill="#8e8e8e" text-anchor="end">'
                f"{fmt(top * frac, unit)}</text>"
            )
        for k, label in ((0, "-" + str(round((end - start) / 60)) + " min"), (1, "now")):
            out.append(
                f'<text x="{px + k * pw}" y="{py + ph + 14}" fill="#8e8e8e" '
                f'text-anchor="{"start" if k == 0 else "end"}">{label}</text>'
            )
        legend_x = px
        for i, (name, pts) in enumerate(series[:8]):
            color = PALETTE[i % len(PALETTE)]
            path = " ".join(
                f"{'M' if j == 0 else 'L'}{px + (t - start) / (end - start) * pw:.1f},"
                f"{py + ph - v / top * ph:.1f}"
                for j, (t, v) in enumerate(pts)
            )
            if path:
                out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            out.append(f'<rect x="{legend_x}" y="{py + ph + 24}" width="10" height="3" fill="{color}"/>')
            out.append(f'<text x="{legend_x + 14}" y="{py + ph + 29}" fill="#ccccdc">{escape(name)}</text>')
            legend_x += 24 + 7 * len(name)
        if not series:
            out.append(
                f'<text x="{px + pw / 2}" y="{py + ph / 2}" fill="#8e8e8e" '
                'text-anchor="middle">no data</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "observability-preview.svg"))
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-preview-"))
    (tmp / "previewapp.py").write_text(textwrap.dedent(APP))
    url = f"sqlite:///{tmp}/preview.db"
    env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT / "src")])}
    worker_port, serve_port, prom_port = free_port(), free_port(), free_port()
    conveyor = [sys.executable, "-m", "conveyor"]
    procs: list[subprocess.Popen[bytes]] = []
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        subprocess.run([*conveyor, "migrate", "previewapp:app"], env=env, cwd=tmp, check=True, **quiet)  # type: ignore[call-overload]
        procs.append(subprocess.Popen(
            [*conveyor, "worker", "previewapp:app", "--processes", "2", "--concurrency", "4",
             "--metrics-port", str(worker_port), "--metrics-host", "127.0.0.1", "--log-level", "error"],
            env=env, cwd=tmp, **quiet))  # fmt: skip
        procs.append(subprocess.Popen(
            [*conveyor, "serve", "previewapp:app", "--port", str(serve_port), "--log-level", "error"],
            env=env, cwd=tmp, **quiet))  # fmt: skip
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "conveyor-worker",
                    "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
                },
                {"job_name": "conveyor-serve", "static_configs": [{"targets": [f"127.0.0.1:{serve_port}"]}]},
            ],
        }
        (tmp / "prometheus.yml").write_text(json.dumps(config))
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], **quiet))  # fmt: skip
        prom = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{prom}/-/ready")
        wait_http(f"http://127.0.0.1:{worker_port}/metrics")
        wait_http(f"http://127.0.0.1:{serve_port}/healthz")
        sys.path[:0] = [str(tmp), str(ROOT / "src")]
        os.environ["CONVEYOR_URL"] = url
        import previewapp  # the App, as a producer

        app = previewapp.app
        start = time.time()
        n = 0
        while time.time() - start < args.seconds:
            phase = (time.time() - start) / args.seconds
            # Waves: a quiet start, a burst the workers cannot keep up with, then recovery.
            emails = 400 if 0.3 < phase < 0.4 else 8
            app.enqueue_many([{"task": "send_email", "args": [n + i]} for i in range(emails)])
            if random.random() < 0.5:
                app.enqueue("build_report", args=[n])
            app.enqueue_many([{"task": "deliver", "args": [n + i]} for i in range(3)])
            n += emails + 4
            time.sleep(1.0)
        time.sleep(5)
        end = time.time()
        panels = json.loads(DASHBOARD.read_text())["panels"]
        answers: dict[int, list[tuple[str, list[tuple[float, float]]]]] = {}
        for panel in panels:
            series = []
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "15s").replace("$queue", ".*")
                for item in query_range(prom, expr, start, end, 2.0):
                    points = [
                        (float(t), float(v)) for t, v in item["values"] if v not in ("NaN", "+Inf", "-Inf")
                    ]
                    series.append((legend(target.get("legendFormat"), item["metric"]), points))
            answers[panel["id"]] = series
        title = (
            f"Conveyor (deploy/grafana/conveyor.json) - {n:,} jobs enqueued over {args.seconds:.0f} s, "
            "queried from a real Prometheus"
        )
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(draw(panels, answers, start, end, title))
        print(f"wrote {args.out} ({n:,} jobs enqueued)")
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    raise SystemExit(main())
