"""What every request handler shares: the App, the key checker, limits, metrics, the enqueue path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..app import App
from ..backends.base import EnqueueResult, NewJob
from .auth import KeyChecker
from .batcher import EnqueueBatcher
from .metrics import Metrics

#: Room in a request body for the fields around the payload (task, queue, key, on_complete...).
BODY_OVERHEAD = 64 * 1024


@dataclass
class ServerState:
    """One server's shared state (``request.app.state.conveyor``)."""

    app: App
    keys: KeyChecker
    metrics: Metrics
    batcher: EnqueueBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = EnqueueBatcher(self.app)

    @property
    def max_body(self) -> int:
        """The largest request body accepted for one job."""
        return self.app.settings.max_payload_bytes + BODY_OVERHEAD

    def prepare(self, items: Sequence[Mapping[str, Any]]) -> list[NewJob]:
        """Turn checked items into NewJobs with the App's own validation (names, payload size, URL)."""
        return self.app.prepare(items)

    async def store(self, jobs: list[NewJob]) -> list[EnqueueResult]:
        """Store jobs; concurrent requests share one backend round trip (see EnqueueBatcher)."""
        if self.batcher.enabled:
            return await self.batcher.submit(jobs)
        return await run_in_threadpool(self.app.backend.enqueue_many, jobs)
