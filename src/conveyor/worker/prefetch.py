"""How many jobs a worker claims ahead of its free run slots: the prefetch buffer.

A buffered job is claimed and leased but not yet running. It saves a free slot
from waiting for a claim round trip, but it is also a job no other worker can
run, and its lease runs from the claim. So the adaptive policy sizes the buffer
from what the worker observes:

- the run time of its attempts, which with the concurrency gives the rate at
  which slots free up. Two exponentially weighted means: a geometric one (of the
  logarithms) for the rate, so that the rare tiny job stalled a few milliseconds
  by the GIL or a page fault does not shrink a no-op stream's batches, and an
  arithmetic one for the lease bound, where the long jobs are what matter;
- the claim round trip (also a weighted mean, of claims that returned jobs).

The buffer should cover ``cover`` claim round trips at that rate (the worker
refills when it is half empty, so half of it must last one round trip), and
hold at least as many jobs as start within ``horizon`` (50 ms) anyway (a deeper
buffer rides out a late refill: a busy GIL, a slow claim), bounded:

- by ``cap`` jobs (500 per process by default): tiny jobs get large batches,
  which is where a claim's fixed cost is spread thinnest;
- by the lease: never more than can start within ``lease_share`` of the lease
  (``buffered * mean run time / concurrency <= lease * lease_share``), where the
  mean is at least as long as the oldest attempt running now has run (jobs slower
  than the past ones show it before they end); the worker releases buffered jobs
  well beyond a target that fell, so they go back to the queue for other workers;
- to none at all when a buffered job would save less than ``useful`` of a slot
  per round trip and none would start within the horizon: slow jobs are claimed
  as slots free, so two workers share a backlog of them instead of the first
  one hoarding it.

Until the first attempt ends nothing is known, and the buffer is the concurrency
(the classic fixed default). A fixed ``prefetch`` (``Worker(prefetch=N)``,
``--prefetch N``) bypasses all of this; 0 means no buffer.
"""

from __future__ import annotations

import math
from collections import deque

#: Most jobs one worker process buffers, however fast they run.
DEFAULT_CAP = 500
#: Claim round trips the buffer covers at the observed completion rate.
DEFAULT_COVER = 2.0
#: The buffer must start within this share of the lease.
DEFAULT_LEASE_SHARE = 0.25
#: Below this many jobs' worth of cover, buffering saves too little to hold anything back.
DEFAULT_USEFUL = 0.1
#: Seconds within which a buffered job would start anyway: such jobs are buffered whatever
#: the round trip (a deeper buffer rides out a late refill).
DEFAULT_HORIZON = 0.05
#: Weight of the newest observation in the weighted means.
ALPHA = 0.2
#: The shortest claim round trip assumed (a first claim, or a clock too coarse to see it).
MIN_ROUND_TRIP = 0.0005
#: A running attempt counts as evidence of slower jobs once it has run this long (seconds):
#: shorter stalls (the GIL, a page fault) of a fast stream must not shrink its batches.
RUNNING_EVIDENCE = 1.0
#: The shortest run time assumed, so that a no-op's near-zero time does not divide by zero.
MIN_RUN_TIME = 1e-6


class Prefetch:
    """The prefetch policy of one worker: fixed (``fixed=N``) or adaptive (``fixed=None``).

    Not thread-safe on its own: the worker calls it with its condition held.
    """

    def __init__(
        self,
        concurrency: int,
        lease: float,
        *,
        fixed: int | None = None,
        cap: int = DEFAULT_CAP,
        cover: float = DEFAULT_COVER,
        lease_share: float = DEFAULT_LEASE_SHARE,
        useful: float = DEFAULT_USEFUL,
        horizon: float = DEFAULT_HORIZON,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.lease = lease
        self.fixed = None if fixed is None else max(0, fixed)
        self.cap = cap
        self.cover = cover
        self.lease_share = lease_share
        self.useful = useful
        self.horizon = horizon
        #: Weighted mean seconds an attempt ran (None until one ended).
        self.run_time: float | None = None
        #: Weighted mean of the logarithm of those seconds (the typical run time's log).
        self._log_run_time: float | None = None
        #: Weighted mean seconds of a claim that returned jobs (None until one did).
        self.round_trip: float | None = None
        #: The sizes of the latest claims that returned jobs (for stats, tests and tuning).
        self.claims: deque[int] = deque(maxlen=64)
        #: Seconds the oldest running attempt has run so far (0 when none runs): a lower bound
        #: on run times the finished attempts have not shown yet (jobs slower than the past ones).
        self.running_for = 0.0
        self._target = self._compute()

    @property
    def adaptive(self) -> bool:
        """True unless a fixed prefetch was given."""
        return self.fixed is None

    def observe_run(self, seconds: float) -> None:
        """One attempt ran for ``seconds`` (start to decided outcome)."""
        seconds = max(seconds, MIN_RUN_TIME)
        logged = math.log(seconds)
        if self.run_time is None or self._log_run_time is None:
            self.run_time, self._log_run_time = seconds, logged
        else:
            self.run_time += ALPHA * (seconds - self.run_time)
            self._log_run_time += ALPHA * (logged - self._log_run_time)
        self._target = self._compute()

    @property
    def typical_run_time(self) -> float | None:
        """The weighted geometric mean of the run times: what a typical attempt takes."""
        return None if self._log_run_time is None else math.exp(self._log_run_time)

    def observe_claim(self, seconds: float, got: int) -> None:
        """A claim took ``seconds`` and returned ``got`` jobs (empty claims say nothing of batches)."""
        if got <= 0:
            return
        self.claims.append(got)
        seconds = max(seconds, MIN_ROUND_TRIP)
        self.round_trip = (
            seconds if self.round_trip is None else self.round_trip + ALPHA * (seconds - self.round_trip)
        )
        self._target = self._compute()

    def observe_running(self, seconds: float) -> None:
        """The oldest attempt running now has run for ``seconds`` (0 when none runs).

        Jobs much slower than the ones before them say so only when they end; until then
        the lease bound uses this lower bound (once it reaches ``RUNNING_EVIDENCE``), so a
        worker that learned tiny jobs does not keep hundreds of slow ones buffered
        against their leases.
        """
        running_for = seconds if seconds >= RUNNING_EVIDENCE else 0.0
        if running_for != self.running_for:
            self.running_for = running_for
            self._target = self._compute()

    def target(self) -> int:
        """Jobs to hold claimed beyond the running ones, now."""
        return self._target

    def _compute(self) -> int:
        if self.fixed is not None:
            return self.fixed
        typical = self.typical_run_time
        if self.run_time is None or typical is None:
            return min(self.concurrency, self.cap)
        rate = self.concurrency / max(typical, MIN_RUN_TIME)  # jobs per second the slots finish
        round_trip = max(self.round_trip or MIN_ROUND_TRIP, MIN_ROUND_TRIP)
        need = rate * round_trip * self.cover
        # Jobs that start within the horizon anyway cost other workers next to nothing when
        # buffered, and a deeper buffer absorbs a refill that comes late (a busy GIL, a slow
        # claim): a slot that finds the buffer empty idles until the next claim lands.
        soon = math.floor(rate * self.horizon + 1e-9)  # (exp(log(x)) may fall a hair short of x)
        if need < self.useful and soon < 1:
            return 0
        need = max(need, soon)
        mean = max(self.run_time, self.running_for, MIN_RUN_TIME)
        within_lease = math.floor(self.lease * self.lease_share * self.concurrency / mean)
        return max(0, min(self.cap, math.ceil(need), within_lease))

    def describe(self) -> dict[str, float | int | str | None]:
        """What the policy knows and decided (``Worker.stats()``)."""
        return {
            "mode": "adaptive" if self.fixed is None else "fixed",
            "target": self._target,
            "run_time": self.run_time,
            "typical_run_time": self.typical_run_time,
            "round_trip": self.round_trip,
            "running_for": self.running_for,
            "largest_claim": max(self.claims, default=0),
        }
