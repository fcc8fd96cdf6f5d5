"""examples/django, run as its README says: a worker on conveyor.contrib.django:app and Django's API."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from readme_commands import readme_run, shell_block  # noqa: E402

EXAMPLE = ROOT / "examples" / "django"


def test_the_django_example_runs_as_its_readme_says(tmp_path: Path) -> None:
    lines = shell_block(EXAMPLE / "README.md")
    assert lines[1] == "conveyor worker conveyor.contrib.django:app &"
    with readme_run(EXAMPLE, tmp_path) as run:
        for line in lines:
            run.run(line)
        (_, enqueued), (_, shown) = run.outputs
    first, second = enqueued.splitlines()
    job_id = first.split()[1]
    assert first == f"enqueued {job_id} (READY)"
    assert second == "SUCCESSFUL: 'welcome mail sent to ada@example.com'"
    assert job_id in shown and "completed" in shown and "welcome.tasks.send_welcome" in shown
    assert (tmp_path / "django" / "conveyor.db").exists()
