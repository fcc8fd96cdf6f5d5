"""Redis: the claim and the idle wait of the Backend protocol, and the claim carried by a wake-up.

A mixin of :class:`~conveyor.backends.redis.RedisBackend` (which supplies ``_run``,
``clients`` and ``base``). An idle worker blocks in ``BLPOP`` on its queues' wake-up
lists ``n:<queue>``; ``wait_and_claim`` sends the claim script in the same write as
the ``BLPOP`` (one pipeline, not a transaction). Redis holds a client's later commands
while that client is blocked and runs them the moment it is unblocked, so the woken
worker's claim runs on the server right after the enqueue that woke it, and the
worker reads the wake-up and its leased jobs in one reply: no second round trip.
The claim is the ordinary ``claim.lua`` (leases, fencing tokens, priorities, flow
control, the reaper all unchanged): at-least-once is kept, only a round trip goes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from .base import ClaimedJob, ClaimRequest
from .redis_support import MAX_BLOCK, translate_errors

#: Fields per job in the claim script's flat reply (docs/redis.md lists them): id, task,
#: queue, payload, attempt, max_attempts, priority, key, on_complete, created_at, run_at,
#: prior_attempts, group, trace_context.
CLAIM_REPLY_WIDTH = 14
#: A BLPOP timeout this short would round to "block forever": sleep instead.
_SHORTEST_BLOCK = 0.002


def _num(value: float) -> str:
    return repr(float(value))


class RedisPickup:
    """Claims and idle waits on Redis (mixed into RedisBackend)."""

    if TYPE_CHECKING:  # supplied by RedisBackend
        base: str
        server: str
        _keys: list[str]

        @property
        def clients(self) -> Any: ...
        def _run(self, name: str, args: Sequence[Any], *, retry: bool = False) -> Any: ...

    @staticmethod
    def _claim_args(request: ClaimRequest) -> tuple[str, list[Any]]:
        """A fresh lease token and the claim script's arguments (empty: nothing to claim)."""
        queues = list(dict.fromkeys(request.queues))
        if request.limit <= 0 or not queues:
            return "", []
        token = secrets.token_hex(8)
        start_limit = request.limit if request.start_limit is None else request.start_limit
        lease = _num(request.lease_seconds)
        return token, [request.limit, lease, request.worker_id, token, start_limit, *queues]

    @staticmethod
    def _claimed(flat: Sequence[Any], token: str) -> list[ClaimedJob]:
        """The claim script's flat reply as ClaimedJobs, all under ``token``."""
        return [
            ClaimedJob(
                flat[i],
                flat[i + 1],
                flat[i + 2],
                flat[i + 3],
                int(flat[i + 4]),
                int(flat[i + 5]),
                token,
                int(flat[i + 6]),
                flat[i + 7],
                flat[i + 8],
                float(flat[i + 9]),
                float(flat[i + 10]),
                flat[i + 12],  # group (the reply's order differs from the fields')
                int(flat[i + 11] or 0),
                flat[i + 13],
            )
            for i in range(0, len(flat), CLAIM_REPLY_WIDTH)
        ]

    @translate_errors
    def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs in one script: priority desc, run_at, then id."""
        token, args = self._claim_args(request)
        if not args:
            return []
        return self._claimed(self._run("claim", args), token)

    def _block_for(self, names: list[str], timeout: float) -> float | None:
        """How long an idle worker may block (0: something is due now; None: do not block)."""
        if timeout <= 0 or not names:
            return None
        micros = self._run("next_due", names, retry=True)
        if micros == -1:
            return 0.0  # due now
        return min(timeout, MAX_BLOCK) if micros == -2 else min(timeout, MAX_BLOCK, micros / 1_000_000)

    @translate_errors
    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Block in BLPOP on the queues' wake-up lists, capped at the next due time."""
        names = list(dict.fromkeys(queues))
        block = self._block_for(names, timeout)
        if not block:
            return
        if block < _SHORTEST_BLOCK:
            time.sleep(block)
            return
        self.clients.blocking.blpop([f"{self.base}n:{q}" for q in names], timeout=block)

    @translate_errors
    def wait_and_claim(self, request: ClaimRequest, timeout: float) -> list[ClaimedJob]:
        """Wait like ``wait_for_jobs`` for ``request.queues``, then claim: the claim rides with the wake-up.

        The claim script is pipelined behind the BLPOP on the same connection, so the
        server runs it as soon as the BLPOP returns (woken or timed out at the next
        due time) and both replies come back together. Not retried (like ``claim``).
        """
        names = list(dict.fromkeys(request.queues))
        block = self._block_for(names, timeout)
        if block is None:
            return []
        clients = self.clients
        if block < _SHORTEST_BLOCK or clients.cluster:
            # Due now (or nearly), or a cluster (its pipelines route by key and are
            # not worth it here): the ordinary wait, then the ordinary claim.
            if block >= _SHORTEST_BLOCK:
                clients.blocking.blpop([f"{self.base}n:{q}" for q in names], timeout=block)
            elif block > 0:
                time.sleep(block)
            return self.claim(request)
        token, args = self._claim_args(request)
        if not args:
            self.wait_for_jobs(names, timeout)
            return []
        script = clients.scripts["claim"]
        pipe = clients.blocking.pipeline(transaction=False)
        pipe.blpop([f"{self.base}n:{q}" for q in names], timeout=block)
        # EVALSHA directly, not through Script: a pipelined Script first asks SCRIPT EXISTS,
        # which would cost the very round trip this saves. NOSCRIPT is handled below.
        pipe.evalsha(script.sha, len(self._keys), *self._keys, *args)
        _, flat = pipe.execute(raise_on_error=False)
        if isinstance(flat, NoScriptError):
            # The server lost its scripts (a restart): the claim did not run, so run it
            # the ordinary way, which loads the script again.
            return self.claim(request)
        if isinstance(flat, Exception):
            raise flat
        return self._claimed(flat, token)
