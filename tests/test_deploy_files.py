"""The ready-made deploy files: Prometheus alerts (promtool) and the Grafana dashboard (real metrics)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import conveyor
from conveyor.server.metrics import Metrics
from conveyor.worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "conveyor.json"
METRIC = re.compile(r"\bconveyor_[a-z_]+\b")


def promtool() -> str:
    """The promtool binary (Debian's ``prometheus`` package; ``make test`` installs it when missing)."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CONVEYOR_REQUIRE_PROMTOOL") or os.environ.get("CI"):
            pytest.fail("promtool is required here: apt-get install prometheus (make promtool)")
        pytest.skip("promtool not installed (apt-get install prometheus, or make promtool)")
    return found


def exposed_metric_names() -> set[str]:
    """Every sample name a worker's and a server's /metrics expose, from real expositions."""
    worker = WorkerMetrics()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(worker.collector())
    app = conveyor.App("memory://deploy-files")
    try:

        @app.task()
        def noop() -> None: ...

        noop.enqueue()
        texts = [generate_latest(registry).decode(), Metrics(app).render().decode()]
    finally:
        app.close()
    names: set[str] = set()
    for text in texts:
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
    # A histogram with no observation yet exposes no series: its names come from the family.
    for histogram in ("conveyor_job_duration_seconds", "conveyor_job_wait_seconds"):
        names.update(f"{histogram}_{suffix}" for suffix in ("bucket", "sum", "count"))
    names.update(
        f"{name}_total"
        for name in ("conveyor_jobs_started", "conveyor_jobs_finished", "conveyor_leases_lost")
    )
    return names


def dashboard_expressions() -> list[tuple[str, str]]:
    data = json.loads(DASHBOARD.read_text())
    found = []
    for panel in data["panels"]:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            found.append((panel["title"], target["expr"]))
    return found


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout
    tested = subprocess.run([tool, "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_alerts_cover_what_the_contract_names_on_metrics_that_exist() -> None:
    text = ALERTS.read_text()
    expressions = "\n".join(line for line in text.splitlines() if line.strip().startswith("expr:"))
    for alert in ("ConveyorFailureTableGrowing", "ConveyorOldestPendingJobTooOld", "ConveyorNoLiveWorkers"):
        assert f"alert: {alert}" in text
    used = set(METRIC.findall(expressions))
    assert used and used <= exposed_metric_names(), used - exposed_metric_names()


def test_every_dashboard_panel_queries_metrics_that_exist() -> None:
    exposed = exposed_metric_names()
    titles = set()
    for title, expr in dashboard_expressions():
        titles.add(title)
        used = set(METRIC.findall(expr))
        assert used, f"{title!r}: {expr!r} uses no Conveyor metric"
        assert used <= exposed, f"{title!r} uses {sorted(used - exposed)}, which no Conveyor /metrics exposes"
    for needed in (
        "Throughput",
        "Failures",
        "Wait time",
        "Run time",
        "Queue depth",
        "Oldest",
        "Live workers",
        "Lost leases",
    ):
        assert any(needed in title for title in titles), f"no panel for {needed}"


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    tool = promtool()
    # Grafana's variables as Prometheus would see them once Grafana has filled them in.
    rules = []
    for i, (_title, expr) in enumerate(dashboard_expressions()):
        concrete = expr.replace("$__rate_interval", "1m").replace("$queue", ".*")
        rules.append({"record": f"conveyor:panel_{i}", "expr": concrete})
    path = tmp_path / "panels.yml"
    path.write_text(json.dumps({"groups": [{"name": "panels", "rules": rules}]}))
    checked = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
