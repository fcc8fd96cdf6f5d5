"""What recording a job's metrics costs: the executor's append, and the batch counting after it.

python -m bench.metrics_cost [--jobs 100000] [--batch 100]
"""

from __future__ import annotations

import argparse
import time

from conveyor.backends.base import ClaimedJob, Outcome
from conveyor.context import JobContext
from conveyor.worker.attempt import Attempt
from conveyor.worker.metrics import WorkerMetrics


def main(argv: list[str] | None = None) -> int:
    """Time each step per job and print it in nanoseconds."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    metrics = WorkerMetrics()
    now = time.time()
    ended: list[tuple[Attempt, Outcome]] = []
    for i in range(args.jobs):
        job = ClaimedJob(str(i), f"task{i % 5}", f"q{i % 3}", "{}", 1, 4, "t", 0, None, None, now, now)
        attempt = Attempt(job, None, JobContext(job.id, job.task, job.queue, 1, 4))
        attempt.started_at = now + 0.001
        ended.append((attempt, Outcome(job.id, "t", "completed", 1, "w", now + 0.001, now + 0.01)))
    began = time.perf_counter()
    for attempt, _ in ended:
        metrics.attempt_started(attempt)
    appended = time.perf_counter()
    metrics.flush_starts()
    started = time.perf_counter()
    for i in range(0, args.jobs, args.batch):
        batch = ended[i : i + args.batch]
        metrics.outcomes_written(batch, [True] * len(batch))
    finished = time.perf_counter()
    per = 1e9 / args.jobs
    print(
        f"on the job's path (append): {(appended - began) * per:.0f} ns/job; "
        f"counting the start and its wait: {(started - appended) * per:.0f} ns/job; "
        f"counting the outcome and its run time: {(finished - started) * per:.0f} ns/job"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
