"""The HTTP API's shapes, declared once: request bodies, query parameters and responses.

Each is a msgspec ``Struct`` (or a union of them). The same declaration decodes and
checks a request (``inputs``), names what was wrong when it fails (``explain``), and
becomes the JSON Schema of the OpenAPI document (``openapi``).

Conventions the other modules read from these types:

- ``Meta(extra={"name_of": KIND})`` on a string: a queue or task name. A string that
  does not match is a 422 ``invalid_name`` (the model's ``check_name`` words it).
- ``Meta(extra={"status_of": STATES})`` on a ``Literal``: a status word. Another word
  is a 422 ``unknown_status`` (the model's ``parse_state`` words it).
- ``aliases``, a ClassVar on a body or query Struct: other accepted spellings of a
  field (``{"olderThan": "older_than"}``); snake_case is canonical.
- A subclass of ``Parsed``: a value read from text by its own rule (times, ages).

Value rules the job builder owns (key length, URL, run_at text) are not repeated
here; these types check the HTTP shape: types, ranges every backend can store,
unknown fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from ..actions import MAX_ERROR_FILTER
from ..backends.flow import MAX_GROUP_CHARS
from ..builder import MAX_ATTEMPTS, MAX_DELAY_SECONDS, MAX_PRIORITY, MAX_TIMESTAMP, NAME_PATTERN
from ..durations import parse_duration
from ..states import ALL_STATES, PURGEABLE, RESUBMITTABLE, State
from ..webhooks import HTTP_TASK, check_http_kwargs

#: Bounds of a page and a batch (value bounds such as MAX_PRIORITY are the job builder's).
MAX_PAGE = 500
MAX_OFFSET = 10**9
MAX_BATCH = 1000
MAX_BATCH_SIZE = 500


# -- values read from text ---------------------------------------------------------------------------
class Parsed:
    """A value with its own reading rule: ``parse`` raises ValueError naming what is valid."""

    #: What a valid value looks like, for error messages.
    expected: ClassVar[str]
    #: Its JSON Schema in the OpenAPI document.
    json_schema: ClassVar[dict[str, Any]]

    @classmethod
    def parse(cls, value: object) -> Any:
        """The value read from JSON (or a query string); ValueError when it is not one."""
        raise NotImplementedError


def parse_time(value: object) -> float:
    """An ISO-8601 time (a time without offset is UTC) or POSIX seconds, as POSIX seconds."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be {Instant.expected}, got {shown(value)}")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{shown(value)} is not {Instant.expected}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            seconds = moment.timestamp()
        except (OverflowError, ValueError):
            raise ValueError(f"{shown(value)} is out of range") from None
    else:
        seconds = float(value)
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_TIMESTAMP):
        raise ValueError(f"{shown(value)} is out of range (1970 to 9999)")
    return seconds


class Instant(float, Parsed):
    """A moment as POSIX seconds, read from an ISO-8601 time or a number."""

    expected = "an ISO-8601 time such as 2024-01-01T00:00:00Z"
    json_schema: ClassVar[dict[str, Any]] = {
        "type": "string",
        "format": "date-time",
        "description": "ISO-8601; a time without an offset is UTC.",
    }

    @classmethod
    def parse(cls, value: object) -> Instant:
        """POSIX seconds from an ISO-8601 time or a number."""
        return cls(parse_time(value))


_DURATION_SUFFIX = re.compile(r"[smhd]\s*$")


class OlderThan(Parsed):
    """A purge horizon: a time (finished before it) or an age such as ``7d`` (finished longer ago)."""

    expected = 'an ISO-8601 time such as 2024-01-01T00:00:00Z or an age such as "7d", "12h", "30m", "45s"'
    json_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smhd]\s*$"},
        ],
        "description": 'An ISO-8601 time, or an age: "7d", "12h", "30m", "45s".',
    }

    def __init__(self, *, age: float | None = None, before: float | None = None) -> None:
        self.age = age
        self.before = before

    @classmethod
    def parse(cls, value: object) -> OlderThan:
        """An age when the text ends in a unit (s, m, h, d), else a time."""
        # ISO-8601 times end in a digit, Z or an offset, never in a unit letter: no ambiguity.
        if isinstance(value, str) and _DURATION_SUFFIX.search(value):
            try:
                return cls(age=parse_duration(value))
            except ValueError:
                raise ValueError(f"{shown(value)} is not {cls.expected}") from None
        try:
            return cls(before=parse_time(value))
        except ValueError:
            raise ValueError(f"{shown(value)} is not {cls.expected}") from None

    def age_at(self, now: float) -> float:
        """Seconds since the horizon, as seen at ``now`` (the backend's clock)."""
        if self.age is not None:
            return self.age
        assert self.before is not None
        return max(0.0, now - self.before)


def shown(value: object, limit: int = 80) -> str:
    """A value as it goes into an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


# -- reusable field types -------------------------------------------------------------------------------
TaskName = Annotated[
    str,
    Meta(
        pattern=NAME_PATTERN.pattern,
        description="A registered task name (conveyor.http is built in).",
        extra={"name_of": "task"},
    ),
]
QueueName = Annotated[str, Meta(pattern=NAME_PATTERN.pattern, extra={"name_of": "queue"})]
Status = Annotated[State, Meta(extra={"status_of": ALL_STATES})]
PurgeableStatus = Annotated[
    Literal["completed", "failed", "cancelled"], Meta(extra={"status_of": tuple(sorted(PURGEABLE))})
]
ResubmittableStatus = Annotated[
    Literal["failed", "cancelled"], Meta(extra={"status_of": tuple(sorted(RESUBMITTABLE))})
]
ErrorText = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_ERROR_FILTER,
        description="Only jobs whose last error contains this text (plain text, case-sensitive).",
    ),
]
Limit = Annotated[int, Meta(ge=0, le=MAX_PAGE, description="Page size.")]
Group = Annotated[
    str, Meta(min_length=1, max_length=MAX_GROUP_CHARS, description="The job's group (flow control).")
]
Offset = Annotated[int, Meta(ge=0, le=MAX_OFFSET, description="How many to skip.")]


# -- requests -------------------------------------------------------------------------------------------
class NoQuery(Struct, forbid_unknown_fields=True, frozen=True):
    """A route without query parameters: any parameter is refused."""


class JobRequest(Struct, forbid_unknown_fields=True):
    """One job to enqueue (``POST /api/jobs``); a null field is the same as an absent one."""

    task: TaskName
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: QueueName | None = None
    delay: Annotated[float, Meta(ge=0, le=MAX_DELAY_SECONDS, description="Seconds from now.")] | None = None
    run_at: (
        Annotated[str, Meta(description="ISO-8601; a time without an offset is UTC.")]
        | Annotated[float, Meta(ge=0, le=MAX_TIMESTAMP, description="POSIX seconds.")]
        | None
    ) = None
    priority: Annotated[int, Meta(ge=-MAX_PRIORITY - 1, le=MAX_PRIORITY)] | None = None
    key: Annotated[str, Meta(description="Idempotency key (1 to 512 characters).")] | None = None
    key_mode: Literal["keep", "replace"] | None = None
    max_attempts: Annotated[int, Meta(ge=1, le=MAX_ATTEMPTS)] | None = None
    on_complete: Annotated[str, Meta(description="An http(s) URL to POST the outcome to.")] | None = None
    group: Group | None = None

    def __post_init__(self) -> None:
        if self.delay is not None and self.run_at is not None:
            raise ValueError("give delay or run_at, not both")
        if self.task == HTTP_TASK:
            if self.args:
                raise ValueError(f"{HTTP_TASK} takes kwargs only (url, method, json|body, headers, timeout)")
            check_http_kwargs(self.kwargs or {})

    def item(self) -> dict[str, Any]:
        """The fields that were given, as an item for the job builder."""
        return {name: value for name in self.__struct_fields__ if (value := getattr(self, name)) is not None}


JobBatch = Annotated[list[JobRequest], Meta(min_length=1, max_length=MAX_BATCH)]


class Resubmit(Struct, forbid_unknown_fields=True):
    """Edited arguments for a resubmitted job; absent or null keeps the stored ones."""

    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None


class PurgeRequest(Struct, forbid_unknown_fields=True):
    """Which finished jobs ``POST /api/queue/purge`` deletes."""

    aliases: ClassVar[Mapping[str, str]] = {"olderThan": "older_than"}

    status: PurgeableStatus
    older_than: OlderThan


class JobListQuery(Struct, forbid_unknown_fields=True, frozen=True):
    """Filters and paging of ``GET /api/queue`` (an empty value means no filter)."""

    status: Annotated[Status, Meta(description="Only jobs in this status.")] | None = None
    queue: Annotated[QueueName, Meta(description="Only jobs in this queue.")] | None = None
    task: Annotated[TaskName, Meta(description="Only jobs of this task.")] | None = None
    group: Annotated[Group, Meta(description="Only jobs of this group.")] | None = None
    limit: Limit = 50
    offset: Offset = 0
    created_after: Instant | None = None
    created_before: Instant | None = None
    error: ErrorText | None = None


class BulkRetryRequest(Struct, forbid_unknown_fields=True):
    """Which jobs ``POST /api/queue/retry`` resubmits: the filters of ``GET /api/queue``."""

    status: Annotated[ResubmittableStatus, Meta(description="failed (the default) or cancelled.")] = "failed"
    queue: QueueName | None = None
    task: TaskName | None = None
    error: ErrorText | None = None
    created_after: Instant | None = None
    created_before: Instant | None = None
    dry_run: Annotated[bool, Meta(description="Count the matching jobs and change nothing.")] = False


class BulkDeleteRequest(Struct, forbid_unknown_fields=True):
    """Which jobs ``POST /api/queue/delete`` deletes: the filters of ``GET /api/queue`` (one at least)."""

    status: Status | None = None
    queue: QueueName | None = None
    task: TaskName | None = None
    error: ErrorText | None = None
    created_after: Instant | None = None
    created_before: Instant | None = None
    dry_run: Annotated[bool, Meta(description="Count the matching jobs and change nothing.")] = False


#: A concurrency limit as stored: a whole number of jobs.
LimitCount = Annotated[int, Meta(description="At most this many jobs processing at once.")]
#: A rate as text; the model checks its form (``"N/PERIOD"``) and answers 422 when it is wrong.
RateText = Annotated[
    str, Meta(description="N/PERIOD, PERIOD one of s, m, h, d with an optional count: 100/m, 5/10s.")
]


class QueuePatch(Struct, forbid_unknown_fields=True):
    """Changes to a queue's flow-control settings: an absent field stays, null removes that limit."""

    concurrency: LimitCount | UnsetType | None = UNSET
    rate_limit: RateText | UnsetType | None = UNSET
    group_concurrency: LimitCount | UnsetType | None = UNSET
    group_rate_limit: RateText | UnsetType | None = UNSET
    paused: bool | UnsetType = UNSET

    def changes(self) -> dict[str, Any]:
        """The fields that were given."""
        return {name: value for name in self.__struct_fields__ if (value := getattr(self, name)) is not UNSET}


class ProcessQuery(Struct, forbid_unknown_fields=True, frozen=True):
    """How many due jobs ``POST /api/queue/process`` runs at most."""

    aliases: ClassVar[Mapping[str, str]] = {"batchSize": "batch_size"}

    batch_size: Annotated[int, Meta(ge=1, le=MAX_BATCH_SIZE, description="At most this many jobs.")] = 10


class AuditQuery(Struct, forbid_unknown_fields=True, frozen=True):
    """Paging of ``GET /api/audits``, optionally for one job."""

    job_id: Annotated[str, Meta(description="Only this job's attempts.")] | None = None
    limit: Limit = 50
    offset: Offset = 0


class ActionQuery(Struct, forbid_unknown_fields=True, frozen=True):
    """Paging of ``GET /api/actions``, optionally for one job."""

    job_id: Annotated[str, Meta(description="Only the actions naming this job.")] | None = None
    limit: Limit = 50
    offset: Offset = 0


# -- responses ------------------------------------------------------------------------------------------
class ErrorDetail(Struct):
    """A stable code and a message naming the problem."""

    code: str
    message: str


class Error(Struct):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class JobRef(Struct):
    """The job an enqueue created (or found by its key)."""

    id: str
    status: State


class JobRefItem(Struct):
    """One job of a batch enqueue; ``created`` is false when its key matched a job."""

    id: str
    status: State
    created: bool


class JobRefs(Struct):
    """The jobs of a batch enqueue, in the order given."""

    items: list[JobRefItem]


class Attempt(Struct):
    """One attempt record."""

    job_id: str
    attempt: int
    outcome: str
    worker: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    traceback: str | None = None
    status_code: int | None = None
    response_excerpt: str | None = None
    #: The arguments this attempt ran with (null on records from before they were kept).
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None


class JobSummary(Struct):
    """A job as listed: everything stored but its attempt records."""

    id: str
    task: str
    queue: str
    status: State
    attempt: int
    max_attempts: int
    created_at: datetime
    #: Attempts run before the latest resubmit: numbers go on, the budget restarts.
    prior_attempts: int = 0
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    priority: int = 0
    run_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    key: str | None = None
    worker: str | None = None
    cancel_requested: bool = False
    on_complete: str | None = None
    group: str | None = None
    #: The schedule that enqueued the job and the tick it ran for (null for other jobs).
    schedule: str | None = None
    scheduled_for: datetime | None = None


class JobDetail(JobSummary):
    """One job with its attempt records."""

    attempts: list[Attempt] = []


class JobPage(Struct):
    """A page of jobs and how many matched."""

    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class StateCounts(Struct):
    """Jobs in each of the six states."""

    pending: int
    processing: int
    retry: int
    completed: int
    failed: int
    cancelled: int


class Stats(Struct):
    """Counts by status, overall and per queue, and the age of the oldest due pending job."""

    counts: StateCounts
    queues: dict[str, StateCounts]
    oldest_pending_age_s: float | None


class GroupCounts(Struct):
    """One of a queue's busiest groups."""

    group: str
    waiting: int
    processing: int


class QueueInfo(Struct):
    """A queue: its flow-control settings, its counts, and how it stands against its limits now."""

    name: str
    paused: bool
    concurrency: int | None
    rate_limit: str | None
    group_concurrency: int | None
    group_rate_limit: str | None
    counts: StateCounts
    processing: int
    started_in_window: int
    throttled: bool
    busiest_groups: list[GroupCounts]


class QueueList(Struct):
    """Every queue with jobs or settings."""

    items: list[QueueInfo]


class Deleted(Struct):
    """A job that was deleted."""

    id: str
    deleted: bool


class Purged(Struct):
    """How many jobs a purge deleted."""

    purged: int


class Processed(Struct):
    """What one processed batch did."""

    processed: int
    completed: int
    failed: int
    retried: int
    cancelled: int = 0


class AuditPage(Struct):
    """A page of attempt records, newest first."""

    items: list[Attempt]
    limit: int
    offset: int


class Health(Struct):
    """The backend answers."""

    status: Literal["ok"]


class Unhealthy(Struct):
    """The backend does not answer."""

    status: Literal["unavailable"]
    error: ErrorDetail


class RetriedMany(Struct):
    """What a bulk retry did: with ``dry_run``, ``matched`` counts what it would resubmit."""

    dry_run: bool
    matched: int
    resubmitted: int


class DeletedMany(Struct):
    """What a bulk delete did; ``skipped`` matching jobs were processing and stay."""

    dry_run: bool
    matched: int
    deleted: int
    skipped: int


class Action(Struct):
    """One recorded operator action: who (the key's role and name, never the key), what, when."""

    id: int
    at: datetime
    actor: str
    role: str | None
    action: str
    job_id: str | None
    count: int
    detail: dict[str, Any] | None


class ActionPage(Struct):
    """A page of the action trail, newest first."""

    items: list[Action]
    limit: int
    offset: int


class KeyInfo(Struct):
    """The key a request carries: its role and the name the action trail gives it."""

    role: Literal["read", "write", "admin"]
    actor: str
