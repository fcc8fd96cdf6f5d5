"""A Conveyor worker process with timestamps on the pickup path, for ``python -m bench.profile --latency``.

    python -m bench.peers.traced_worker [conveyor worker options]

Wraps the worker's backend so that every claimed latency probe records, on
this machine's clock: when it was enqueued, when the fetch loop last woke from
``wait_for_jobs``, when the claim started and returned; and the probe task
records when it started. Everything else is the stock ``conveyor worker``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from conveyor.cli import main as conveyor_main
from conveyor.worker import runner

from . import common

_original_init = runner.Worker.__init__


def _traced_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    backend = self.backend
    wait, claim = backend.wait_for_jobs, backend.claim
    state = {"woke": 0.0}

    def wait_for_jobs(queues: Any, timeout: float) -> None:
        wait(queues, timeout)
        state["woke"] = time.time()

    def traced_claim(request: Any) -> Any:
        started = time.time()
        jobs = claim(request)
        ended = time.time()
        for job in jobs:
            if job.task == "pickup":
                sent_at = json.loads(job.payload)["args"][0]
                common.SINK.write(
                    "trace", b"%.6f %.6f %.6f %.6f\n" % (sent_at, state["woke"], started, ended)
                )
        return jobs

    backend.wait_for_jobs = wait_for_jobs
    backend.claim = traced_claim
    wait_and_claim = getattr(backend, "wait_and_claim", None)
    if wait_and_claim is not None:
        # The claim rides with the wake-up: its round trip is inside "enqueue -> wake-up",
        # and the claim itself shows as taking no time.

        def traced_wait_and_claim(request: Any, timeout: float) -> Any:
            jobs = wait_and_claim(request, timeout)
            state["woke"] = ended = time.time()
            for job in jobs:
                if job.task == "pickup":
                    sent_at = json.loads(job.payload)["args"][0]
                    common.SINK.write("trace", b"%.6f %.6f %.6f %.6f\n" % (sent_at, ended, ended, ended))
            return jobs

        backend.wait_and_claim = traced_wait_and_claim


def _traced_pickup(sent_at: float) -> None:
    common.SINK.write("start", b"%.6f %.6f\n" % (sent_at, time.time()))


def main() -> None:
    """Patch, then run ``conveyor worker bench.peers.conveyor_peer:app`` with the given options."""
    runner.Worker.__init__ = _traced_init  # type: ignore[method-assign]
    common.pickup = _traced_pickup  # type: ignore[assignment]
    conveyor_main(["worker", "bench.peers.conveyor_peer:app", *sys.argv[1:]])


if __name__ == "__main__":
    main()
