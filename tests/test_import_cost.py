"""What a process imports: ``import conveyor`` and a worker load only what they use.

A worker's start-up is mostly imports, so the heavy optional libraries (the CLI's
tables, the HTTP server, the HTTP task's client, metrics, tracing, cron parsing, the
other engines' drivers) must stay out until something asks for them. Each check runs
a fresh interpreter, since this one has imported everything long ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

#: Top-level modules no worker (and no plain ``import conveyor``) may load.
HEAVY = {
    "rich",
    "httpx",
    "starlette",
    "uvicorn",
    "msgspec",
    "prometheus_client",
    "opentelemetry",
    "cronsim",
}
#: The engines' drivers: a process loads only the one its URL names.
DRIVERS = {"psycopg", "psycopg_pool", "redis"}

APP_SOURCE = textwrap.dedent(
    """
    import json, sys

    import conveyor

    app = conveyor.App()

    @app.task()
    def modules(path):
        with open(path, "w") as out:
            json.dump(sorted(sys.modules), out)
    """
)


def fresh_python(code: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a new interpreter with this checkout's source first; its stdout."""
    merged = {**os.environ, **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SRC), str(cwd or ""), merged.get("PYTHONPATH")) if p
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=merged, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def top_level(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_import_conveyor_loads_no_heavy_module_and_no_worker() -> None:
    out = fresh_python("import conveyor, json, sys; print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(out)
    assert top_level(loaded) & (HEAVY | DRIVERS) == set()
    assert not [m for m in loaded if m.startswith("conveyor.worker.") or m.startswith("conveyor.server")]
    assert "asyncio" not in loaded  # a producer that never awaits does not pay for the event loop


def test_lazy_public_names_still_resolve() -> None:
    out = fresh_python(
        "import conveyor, conveyor.worker as w\n"
        "from conveyor import Worker\n"
        "print(Worker is conveyor.Worker is w.Worker, w.BatchResult.__name__, 'Worker' in dir(conveyor))"
    )
    assert out.split() == ["True", "BatchResult", "True"]


def test_lazy_public_names_are_listed_before_they_are_loaded() -> None:
    out = fresh_python(
        "import sys, conveyor\n"
        "listed = 'Worker' in dir(conveyor)\n"
        "print(listed, 'Worker' in vars(conveyor), 'conveyor.worker' in sys.modules)"
    )
    assert out.split() == ["True", "False", "False"], "dir() lists Worker without importing the worker"


def test_a_sqlite_worker_runs_a_job_without_heavy_modules(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(APP_SOURCE)
    seen = tmp_path / "modules.json"
    url = f"sqlite:///{tmp_path / 'w.db'}"
    fresh_python(
        f"import tasks; tasks.app.backend.migrate(); tasks.app.enqueue('modules', [{str(seen)!r}])",
        cwd=tmp_path,
        env={"CONVEYOR_URL": url},
    )
    argv = ["worker", "tasks:app", "--burst"]
    code = f"import sys\nfrom conveyor.cli import main\nsys.argv[1:] = {argv!r}\nmain()"
    fresh_python(code, cwd=tmp_path, env={"CONVEYOR_URL": url})
    loaded = json.loads(seen.read_text())
    assert "conveyor.worker.runner" in loaded  # the job really ran in a worker
    assert top_level(loaded) & (HEAVY | DRIVERS) == set()


def test_a_burst_supervisor_exits_once_its_processes_are_done(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(APP_SOURCE)
    seen = tmp_path / "modules.json"
    url = f"sqlite:///{tmp_path / 'w.db'}"
    env = {**os.environ, "CONVEYOR_URL": url}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), str(tmp_path), env.get("PYTHONPATH")) if p)
    fresh_python(
        f"import tasks; tasks.app.backend.migrate(); tasks.app.enqueue('modules', [{str(seen)!r}])",
        cwd=tmp_path,
        env={"CONVEYOR_URL": url},
    )
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "worker", "tasks:app", "--burst", "--processes", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a supervisor that restarted its finished children would never exit
    )
    assert done.returncode == 0, done.stderr
    assert seen.exists()
    assert "restarting" not in done.stderr


UNCONFIGURED_TRACING = """
import sys
import conveyor
from conveyor.testing import drain
from conveyor.tracing import incoming

app = conveyor.App("memory://unconfigured-tracing")

@app.task()
def work(n):
    return n

with incoming("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
    job = work.enqueue(1)
plain = work.enqueue(2)
assert drain(app).completed == 2
print(job.refresh().attempts[-1].trace_id, plain.refresh().attempts[-1].trace_id)
"""


def test_without_a_tracer_provider_no_span_starts_and_the_stored_trace_id_is_kept() -> None:
    # OpenTelemetry's API is installed here but no provider is configured: spans would be no-ops.
    out = fresh_python(UNCONFIGURED_TRACING)
    assert out.split() == ["0af7651916cd43dd8448eb211c80319c", "None"]


def test_the_version_constant_matches_pyproject() -> None:
    pyproject = (SRC.parent / "pyproject.toml").read_text()
    declared = next(line for line in pyproject.splitlines() if line.startswith("version = "))
    assert declared == f'version = "{conveyor_version()}"'


def conveyor_version() -> str:
    from conveyor.version import VERSION

    return VERSION
