"""Flow control, engine-neutral: queue settings, rates, and the rules every claim applies.

Every engine enforces the same limits inside its claim, atomically (SQLite: the
write transaction; PostgreSQL: the claim locks the queue's settings row; Redis:
one Lua script; memory: the store's lock). The rules, written once:

* **Which queues are managed.** A queue is *managed* when it has a settings row
  (``configure_queue``, ``pause_queue``, or the first enqueue of a grouped job
  creates it). Claims on unmanaged queues take the engine's plain claim, untouched;
  managed queues take the flow claim below.
* **The queue's room** (:func:`queue_room`): a paused queue has none; else the
  least of the claim's own limit, ``concurrency`` minus the queue's ``processing``
  jobs, and ``rate_limit.count`` minus the starts recorded within the last
  ``rate_limit.period`` seconds on the backend's clock (a sliding window).
* **A group's room** (:func:`group_room`): the same with ``group_concurrency`` and
  ``group_rate_limit``, counted over the jobs of that group. Jobs without a group
  are never held back by group limits.
* **Fair order.** Waiting jobs of a managed queue are taken in the order
  ``priority desc, fair_rank, run_at, id``. ``fair_rank`` is a virtual time given
  at enqueue (start-time fair queueing): a grouped job gets
  ``max(last rank of its group, the queue's clock) + 1`` (:func:`first_rank`), and
  each claim advances the queue's clock to the highest rank it took. So the n-th
  waiting job of every group shares rank ~n: claims go round-robin across groups,
  a group's backlog of 100,000 never starves another's 10, and a group that was
  idle re-enters at the current clock instead of at the front. Jobs without a
  group have rank 0: they go ahead of grouped ones (each is its own, never-served
  group). The walk is an index range in that order, so a claim reads a bounded
  number of rows however many groups wait (:data:`SCAN_FACTOR`).
* **Picking** (:func:`pick`): walk the candidates in fair order, take a job while
  the queue has room and its group has room, count each taken job against both.
* **Starts** are recorded (queue, group, time) only for queues with a rate limit
  of either kind, and pruned past the longest window as claims go.
* A leased job holds its concurrency slot until it leaves ``processing``
  (finished, released, or reaped): slots are counted, never stored, so none can leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ..errors import InvalidGroup, InvalidLimit

#: A job's group: any string of 1 to this many characters.
MAX_GROUP_CHARS: Final = 200
#: The largest count a limit may name (fits every engine's integer).
MAX_LIMIT: Final = 1_000_000_000
#: A claim reads at most ``limit * SCAN_FACTOR`` candidate rows per queue (plus a floor).
SCAN_FACTOR: Final = 4
SCAN_FLOOR: Final = 64
#: How many of the busiest groups a queue's usage lists.
BUSIEST_GROUPS: Final = 5

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The settings a queue has, in the order listings show them.
SETTING_FIELDS: Final = ("concurrency", "rate_limit", "group_concurrency", "group_rate_limit", "paused")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts in any window of ``period`` seconds; ``text`` is its spelling."""

    count: int
    period: float
    text: str

    def __str__(self) -> str:
        return self.text


def parse_rate(value: object, name: str = "rate_limit") -> Rate:
    """``"N/PERIOD"`` (PERIOD: s, m, h or d, optionally with a count: ``"5/10s"``) to a Rate."""
    if isinstance(value, Rate):
        return value
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidLimit(
            f"{name} {value!r} is not a rate: write N/PERIOD with PERIOD one of s, m, h, d, "
            f"optionally with a count, e.g. '100/m', '5/s', '5/10s'"
        )
    count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    if count < 1 or count > MAX_LIMIT:
        raise InvalidLimit(f"{name} {value!r} must allow 1 to {MAX_LIMIT} starts per period")
    if multiple < 1:
        raise InvalidLimit(f"{name} {value!r} has a zero period: write e.g. '5/10s'")
    text = f"{count}/{'' if multiple == 1 else multiple}{unit}"
    return Rate(count, float(multiple * _PERIOD_SECONDS[unit]), text)


def check_limit(name: str, value: object) -> int:
    """A concurrency limit: a whole number from 1 to :data:`MAX_LIMIT`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidLimit(f"{name} must be a whole number >= 1 (or None to remove it), got {value!r}")
    if value < 1 or value > MAX_LIMIT:
        raise InvalidLimit(f"{name} must be from 1 to {MAX_LIMIT} (or None to remove it), got {value!r}")
    return value


def check_group(value: object) -> str:
    """A job's group: a string of 1 to :data:`MAX_GROUP_CHARS` characters."""
    if not isinstance(value, str):
        raise InvalidGroup(f"group must be a string, got {type(value).__name__} {value!r:.80}")
    if not 1 <= len(value) <= MAX_GROUP_CHARS:
        raise InvalidGroup(
            f"group must be 1 to {MAX_GROUP_CHARS} characters, got {len(value)}: {value[:40]!r}..."
            if value
            else f"group must be 1 to {MAX_GROUP_CHARS} characters, got an empty string"
        )
    return value


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The stored flow settings of one queue (None: no such limit)."""

    name: str
    concurrency: int | None = None
    rate_limit: Rate | None = None
    group_concurrency: int | None = None
    group_rate_limit: Rate | None = None
    paused: bool = False

    @property
    def rated(self) -> bool:
        """True when claims must record their starts (a rate limit of either kind)."""
        return self.rate_limit is not None or self.group_rate_limit is not None

    @property
    def longest_window(self) -> float:
        """How long a recorded start matters (0 without rate limits)."""
        return max((r.period for r in (self.rate_limit, self.group_rate_limit) if r is not None), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON (rates as their text)."""
        return {
            "name": self.name,
            "paused": self.paused,
            "concurrency": self.concurrency,
            "rate_limit": None if self.rate_limit is None else self.rate_limit.text,
            "group_concurrency": self.group_concurrency,
            "group_rate_limit": None if self.group_rate_limit is None else self.group_rate_limit.text,
        }

    def stored(self) -> dict[str, Any]:
        """The settings as an engine stores them: rates as text, paused as 0/1."""
        data = self.to_dict()
        data["paused"] = int(self.paused)
        return data


def settings_from_row(row: Mapping[str, Any]) -> QueueSettings:
    """QueueSettings from a stored row (rates as text, paused as any truthy value)."""

    def rate(text: Any) -> Rate | None:
        return None if text in (None, "") else parse_rate(str(text))

    def count(value: Any) -> int | None:
        return None if value in (None, "") else int(value)

    return QueueSettings(
        name=str(row["name"]),
        concurrency=count(row["concurrency"]),
        rate_limit=rate(row["rate_limit"]),
        group_concurrency=count(row["group_concurrency"]),
        group_rate_limit=rate(row["group_rate_limit"]),
        paused=bool(int(row["paused"] or 0)),
    )


@dataclass(frozen=True, slots=True)
class QueueUpdate:
    """A checked change to one queue's settings: only the fields in ``changes`` change."""

    name: str
    changes: tuple[tuple[str, Any], ...]

    def applied_to(self, current: QueueSettings | None) -> QueueSettings:
        """The settings after this change."""
        base = current if current is not None else QueueSettings(self.name)
        return replace(base, **dict(self.changes))


def queue_update(name: str, changes: Mapping[str, Any]) -> QueueUpdate:
    """Check a change (``concurrency=10, rate_limit="100/m", paused=True``...) before anything is stored.

    A value of None removes that limit. Raises InvalidLimit naming the bad value; nothing
    is changed then.
    """
    unknown = set(changes) - set(SETTING_FIELDS)
    if unknown:
        raise InvalidLimit(f"unknown queue setting(s) {sorted(unknown)}; valid: {', '.join(SETTING_FIELDS)}")
    checked: list[tuple[str, Any]] = []
    for key, value in changes.items():
        if key == "paused":
            if not isinstance(value, bool):
                raise InvalidLimit(f"paused must be true or false, got {value!r}")
            checked.append((key, value))
        elif value is None:
            checked.append((key, None))
        elif key in ("rate_limit", "group_rate_limit"):
            checked.append((key, parse_rate(value, key)))
        else:
            checked.append((key, check_limit(key, value)))
    return QueueUpdate(name, tuple(checked))


@dataclass(frozen=True, slots=True)
class GroupUsage:
    """One group of a queue right now: jobs waiting and processing."""

    group: str
    waiting: int
    processing: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape in ``GET /api/queues``."""
        return {"group": self.group, "waiting": self.waiting, "processing": self.processing}


@dataclass(frozen=True, slots=True)
class QueueUsage:
    """How a managed queue stands against its limits right now."""

    settings: QueueSettings
    processing: int
    started_in_window: int
    busiest_groups: tuple[GroupUsage, ...] = field(default=())

    @property
    def throttled(self) -> bool:
        """True when the queue's own concurrency or rate limit leaves no room now."""
        return queue_room(self.settings, self.processing, self.started_in_window, 1) == 0 and not (
            self.settings.paused
        )


# -- the claim's rules ----------------------------------------------------------------------
def queue_room(settings: QueueSettings, processing: int, started: int, limit: int) -> int:
    """How many jobs a claim may take from the queue (see the module docstring)."""
    if settings.paused:
        return 0
    room = limit
    if settings.concurrency is not None:
        room = min(room, settings.concurrency - processing)
    if settings.rate_limit is not None:
        room = min(room, settings.rate_limit.count - started)
    return max(room, 0)


def group_room(settings: QueueSettings, processing: int, started: int) -> int | None:
    """How many jobs of one group a claim may take (None: no group limit)."""
    room: int | None = None
    if settings.group_concurrency is not None:
        room = settings.group_concurrency - processing
    if settings.group_rate_limit is not None:
        by_rate = settings.group_rate_limit.count - started
        room = by_rate if room is None else min(room, by_rate)
    return None if room is None else max(room, 0)


def has_group_limits(settings: QueueSettings) -> bool:
    """True when groups have limits of their own."""
    return settings.group_concurrency is not None or settings.group_rate_limit is not None


def scan_size(room: int) -> int:
    """How many candidate rows a claim with ``room`` reads from one queue."""
    return max(room * SCAN_FACTOR, SCAN_FLOOR)


def pick(
    candidates: Iterable[tuple[str, str | None]],
    room: int,
    rooms: Mapping[str, int | None],
) -> list[str]:
    """Ids of ``(id, group)`` candidates (fair order) to claim: queue ``room``, group ``rooms``."""
    left = dict(rooms)
    chosen: list[str] = []
    for job_id, group in candidates:
        if len(chosen) >= room:
            break
        if group is not None:
            group_left = left.get(group)
            if group_left is not None:
                if group_left <= 0:
                    continue
                left[group] = group_left - 1
        chosen.append(job_id)
    return chosen


def first_rank(last_rank: int | None, clock: int | None) -> int:
    """The fair rank of a group's next job: after its last one, and never behind the queue's clock."""
    return max(last_rank or 0, clock or 0) + 1


def busiest(groups: Iterable[GroupUsage], n: int = BUSIEST_GROUPS) -> tuple[GroupUsage, ...]:
    """The ``n`` groups with the most jobs processing, then waiting, then by name."""
    return tuple(sorted(groups, key=lambda g: (-g.processing, -g.waiting, g.group))[:n])


def names_of(queues: Sequence[str]) -> list[str]:
    """Queue names once each, in the order given."""
    return list(dict.fromkeys(queues))
