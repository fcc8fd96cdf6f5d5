"""The FastAPI and Flask examples, run as their READMEs say (the Django one: tests_django/)."""

from __future__ import annotations

import json
from pathlib import Path

from readme_commands import readme_run, shell_block

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_fastapi_example_runs_as_its_readme_says(tmp_path: Path) -> None:
    lines = shell_block(EXAMPLES / "fastapi" / "README.md")
    with readme_run(EXAMPLES / "fastapi", tmp_path) as run:
        for line in lines:
            run.run(line)
        created, waited, stats = (json.loads(out) for _, out in run.outputs)
    assert created["status"] == "pending" and len(created["id"]) == 32
    assert waited == {
        "id": created["id"],
        "status": "completed",
        "result": {"name": "cat.png", "size": 64, "path": waited["result"]["path"]},
    }
    assert stats["counts"]["completed"] == 1
    assert (tmp_path / "fastapi" / "conveyor.db").exists()


def test_the_flask_example_runs_as_its_readme_says(tmp_path: Path) -> None:
    lines = shell_block(EXAMPLES / "flask" / "README.md")
    with readme_run(EXAMPLES / "flask", tmp_path) as run:
        for line in lines:
            run.run(line)
        (_, redirect), (_, page), (_, listing) = run.outputs
    job_id = redirect.strip().rsplit("/", 1)[-1]
    assert len(job_id) == 32 and redirect.startswith("http://127.0.0.1:")
    assert "<h1>Report for 2026-11</h1>" in page and job_id in page
    assert '<strong class="status">completed</strong>' in page and '"orders": 1234' in page
    assert job_id[:8] in listing and "completed" in listing
