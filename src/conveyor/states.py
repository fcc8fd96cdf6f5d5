"""The six job states and the transitions between them (the state machine).

```
pending ──claim──▶ processing ──success──▶ completed
   ▲  │                │ ├──transient error, attempts left──▶ retry ──due──▶ (claimable)
   │  │                │ ├──permanent error / attempts spent──▶ failed
   │  │                │ ├──lease expired (worker lost), attempts left──▶ pending
   │  │                │ └──cancel requested and honoured──▶ cancelled
   │  └──cancel──▶ cancelled                       retry ──cancel──▶ cancelled
   └──resubmit── failed | cancelled
```
"""

from __future__ import annotations

from typing import Final, Literal

from .errors import InvalidStatus

State = Literal["pending", "processing", "retry", "completed", "failed", "cancelled"]

PENDING: Final = "pending"
PROCESSING: Final = "processing"
RETRY: Final = "retry"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"

ALL_STATES: Final[tuple[State, ...]] = (PENDING, PROCESSING, RETRY, COMPLETED, FAILED, CANCELLED)
#: States in which a job is still going to run (or is running).
LIVE_STATES: Final[frozenset[str]] = frozenset({PENDING, PROCESSING, RETRY})
#: States a job never leaves on its own.
FINAL_STATES: Final[frozenset[str]] = frozenset({COMPLETED, FAILED, CANCELLED})
#: States that ``resubmit`` accepts.
RESUBMITTABLE: Final[frozenset[str]] = frozenset({FAILED, CANCELLED})
#: States that ``purge`` accepts.
PURGEABLE: Final[frozenset[str]] = FINAL_STATES

#: Every legal transition, as (from, to). The backends apply only these.
TRANSITIONS: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        (PENDING, PROCESSING),
        (RETRY, PROCESSING),
        (PENDING, CANCELLED),
        (RETRY, CANCELLED),
        (PROCESSING, COMPLETED),
        (PROCESSING, RETRY),
        (PROCESSING, FAILED),
        (PROCESSING, CANCELLED),
        (PROCESSING, PENDING),  # lease lost, or released at shutdown
        (FAILED, PENDING),  # resubmit
        (CANCELLED, PENDING),  # resubmit
    }
)


def parse_state(value: str, allowed: frozenset[str] | tuple[str, ...] = ALL_STATES) -> State:
    """Return ``value`` as a state word, or raise InvalidStatus naming what is valid."""
    if value not in allowed:
        valid = ", ".join(s for s in ALL_STATES if s in allowed)
        raise InvalidStatus(f"unknown status {value!r}: expected one of {valid}")
    return value  # type: ignore[return-value]
