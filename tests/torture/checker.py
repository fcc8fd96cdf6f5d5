"""The Jepsen-style checker: what was accepted, what really ran, and what the store says.

Three sources, compared once everything has settled:

* **accepted**: the ids enqueue returned (the producer's record);
* **executions**: the append-only logs the worker processes write, one line per
  execution that returned (:mod:`torture.workload`);
* **the store**: every job's final state, read by paging through the listing.

From them, per scenario and backend:

* **lost**: accepted, but missing from the store, or not in the final state it
  should reach, or ``completed`` without any execution having returned;
* **unexpected**: an execution or a stored job whose id was never accepted;
* **duplicated**: executions beyond the first for one job (allowed: at-least-once),
  which must be explained by the faults (bounded by the jobs in flight at each);
* **stuck**: accepted and stored, but not in a final state.

Lost, unexpected and stuck must be 0. Each verdict is printed, and appended as a
JSON line to ``$CONVEYOR_TORTURE_RESULTS`` when set (``make torture`` collects
them for docs/reliability.md).
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import conveyor
from conveyor.states import ALL_STATES, FINAL_STATES

PAGE = 10_000  # the listing's cap


@dataclass(frozen=True)
class Execution:
    """One execution of a job that returned, as a worker process logged it."""

    job: str
    n: int
    attempt: int
    worker: int
    start: float
    end: float
    outcome: str


def read_executions(log_dir: Path) -> list[Execution]:
    """Every line of every ``*.log`` under ``log_dir`` (a torn last line, from a kill, is skipped)."""
    runs = []
    for log in sorted(log_dir.glob("*.log")):
        for line in log.read_text().splitlines():
            try:
                runs.append(Execution(**json.loads(line)))
            except (ValueError, TypeError):
                continue
    return runs


def every_job(app: conveyor.App, status: str | None = None) -> Iterator[conveyor.Job]:
    """Every stored job (of one status), page by page under the listing's cap."""
    offset = 0
    while True:
        page = app.jobs(status=status, limit=PAGE, offset=offset)
        yield from page.items
        if len(page.items) < PAGE:
            return
        offset += PAGE


@dataclass
class Verdict:
    """One scenario's figures on one backend."""

    scenario: str
    backend: str
    accepted: int
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    duplicated: int = 0
    executions: int = 0
    kills: int = 0
    duration_s: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"[torture] {self.scenario} on {self.backend}: accepted {self.accepted}, lost {len(self.lost)}, "
            f"unexpected {len(self.unexpected)}, duplicated {self.duplicated}, stuck {len(self.stuck)}, "
            f"kills {self.kills}, {self.duration_s:.1f}s {self.notes or ''}"
        )

    def publish(self) -> None:
        """Print the verdict and append it to ``$CONVEYOR_TORTURE_RESULTS`` if set."""
        print(self.line())
        target = os.environ.get("CONVEYOR_TORTURE_RESULTS")
        if target:
            record = asdict(self)
            for name in ("lost", "unexpected", "stuck"):
                record[name] = len(record[name])
            record["form"] = os.environ.get("CONVEYOR_TORTURE", "short")
            with open(target, "a") as out:
                out.write(json.dumps(record) + "\n")

    def assert_valid(self, max_duplicated: int | None = 0) -> None:
        """Lost, unexpected and stuck are 0; duplicates within the bound the faults explain."""
        self.publish()
        assert not self.lost, f"{len(self.lost)} lost: {self.lost[:10]} ({self.states})"
        assert not self.unexpected, f"{len(self.unexpected)} unexpected: {self.unexpected[:10]}"
        assert not self.stuck, f"{len(self.stuck)} stuck: {self.stuck[:10]} ({self.states})"
        if max_duplicated is not None:
            assert self.duplicated <= max_duplicated, (
                f"{self.duplicated} duplicate executions, more than the faults explain ({max_duplicated})"
            )


def check(
    app: conveyor.App,
    scenario: str,
    backend: str,
    accepted: Iterable[str],
    log_dir: Path | None,
    *,
    expected_state: Mapping[str, str] | None = None,
    started: float | None = None,
    kills: int = 0,
) -> Verdict:
    """Compare accepted ids, logged executions and the store; ``expected_state`` overrides "completed"."""
    accepted_ids = set(accepted)
    expected = expected_state or {}
    runs = read_executions(log_dir) if log_dir is not None else []
    per_job = collections.Counter(run.job for run in runs)
    stored = {job.id: job.state for job in every_job(app)}
    verdict = Verdict(scenario, backend, len(accepted_ids), kills=kills, executions=len(runs))
    verdict.states = dict(collections.Counter(stored.values()))
    for state in ALL_STATES:
        verdict.states.setdefault(state, 0)
    for job_id in sorted(accepted_ids):
        state = stored.get(job_id)
        want = expected.get(job_id, "completed")
        if state is None or (state in FINAL_STATES and state != want):
            verdict.lost.append(job_id)
        elif state not in FINAL_STATES:
            verdict.stuck.append(job_id)
        elif state == "completed" and log_dir is not None and per_job[job_id] == 0:
            verdict.lost.append(job_id)  # the store says done, but it never ran
    verdict.unexpected = sorted({run.job for run in runs} - accepted_ids) + sorted(set(stored) - accepted_ids)
    verdict.duplicated = sum(count - 1 for count in per_job.values() if count > 1)
    if started is not None:
        verdict.duration_s = time.monotonic() - started
    return verdict
