"""The heartbeat: renews the leases a worker holds and learns which attempts to stop."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...backends.base import Backend
from ..attempt import Attempt
from .base import PeriodicService


class Heartbeat(PeriodicService):
    """Every ``interval`` seconds, extends every held lease by ``lease`` seconds in one call.

    The renewal also says which attempts to stop: one whose lease was taken over
    after it lapsed goes to ``on_lost`` (nothing it writes would apply), one whose
    job someone asked to cancel goes to ``on_cancel_requested`` (once). Attempts
    already decided are left alone: their outcome is written or on its way, and
    that write is fenced anyway.
    """

    name = "heartbeat"

    def __init__(
        self,
        backend: Backend,
        interval: float,
        lease: float,
        *,
        held: Callable[[], Sequence[Attempt]],
        on_lost: Callable[[Attempt], None],
        on_cancel_requested: Callable[[Attempt], None],
    ) -> None:
        super().__init__(interval)
        self.backend = backend
        self.lease = lease
        self.held = held
        self.on_lost = on_lost
        self.on_cancel_requested = on_cancel_requested

    def run_once(self) -> None:
        """Renew the held leases and pass on lost leases and cancel requests."""
        attempts = self.held()
        if not attempts:
            return
        renewal = self.backend.extend_leases([attempt.lease for attempt in attempts], self.lease)
        if not renewal.lost and not renewal.cancel_requested:
            return
        for attempt in attempts:
            if attempt.decided:
                continue
            if attempt.job.id in renewal.lost:
                self.on_lost(attempt)
            elif attempt.job.id in renewal.cancel_requested and not attempt.context.cancel_requested:
                self.on_cancel_requested(attempt)
