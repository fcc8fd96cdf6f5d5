"""Reading and checking request input: the body (size-limited JSON), query parameters, job items.

Everything here raises ApiError with a message that names the offending value and
what is valid; nothing reaches the App or the backend before it has passed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from ..builder import ITEM_FIELDS
from ..states import parse_state
from ..task import check_name
from ..webhooks import HTTP_TASK, check_http_kwargs
from .errors import ApiError, bad_request

#: Bounds that keep values inside what every backend stores (64-bit ints, datetimes up to year 9999).
MAX_PRIORITY = 2**31 - 1
MAX_ATTEMPTS = 1000
MAX_DELAY_SECONDS = 10 * 366 * 86400.0
MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z
MAX_PAGE = 500
MAX_OFFSET = 10**9
MAX_BATCH = 1000
_INT = re.compile(r"^[+-]?\d{1,12}$")
#: Job ids are 32 hex digits; accept a little more so a foreign id still gets a clean 404.
_JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


# -- body -------------------------------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (never buffered whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"request body of {int(declared):,} bytes is over {limit:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no numbers that overflow to infinity; 400 naming the problem."""
    if not body.strip():
        raise ApiError(400, "malformed_json", "the request body is empty; send a JSON object")
    try:
        return json.loads(body, parse_constant=_no_constants, parse_float=_finite_float)
    except RecursionError:
        raise ApiError(400, "malformed_json", "the JSON body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "malformed_json", f"the request body is not valid JSON: {exc}") from None


async def json_object(request: Request, limit: int, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}`` when not ``required``."""
    body = await read_body(request, limit)
    if not required and not body.strip():
        return {}
    data = parse_json(body)
    if not isinstance(data, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(data).__name__}")
    return data


def reject_unknown(data: dict[str, Any], allowed: Iterable[str], where: str) -> None:
    """400 naming fields that are not in ``allowed``."""
    valid = sorted(allowed)
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise bad_request(f"{where} has unknown field(s) {_shown(unknown)}; valid: {', '.join(valid)}")


# -- scalars ---------------------------------------------------------------------------------------
def parse_time(value: object, name: str) -> float:
    """An ISO-8601 time (a time without offset is UTC) or POSIX seconds, as POSIX seconds."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise bad_request(
            f"{name} must be an ISO-8601 time such as 2024-01-01T00:00:00Z, got {_shown(value)}"
        )
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise bad_request(
                f"{name} {_shown(value)} is not an ISO-8601 time such as 2024-01-01T00:00:00Z"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            seconds = moment.timestamp()
        except (OverflowError, ValueError):
            raise bad_request(f"{name} {_shown(value)} is out of range") from None
    else:
        seconds = float(value)
    if not 0 <= seconds <= MAX_TIMESTAMP:
        raise bad_request(f"{name} {_shown(value)} is out of range (1970 to 9999)")
    return seconds


def check_int(value: object, name: str, low: int, high: int) -> int:
    """An integer within [low, high], else 400 naming the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}, got {_shown(value)}")
    return value


def check_job_id(job_id: str) -> str:
    """A job id fit to look up; anything else cannot exist, so it is a 404 at once."""
    if not _JOB_ID.fullmatch(job_id):
        raise ApiError(404, "not_found", f"no job with id {_shown(job_id)}")
    return job_id


# -- query parameters -------------------------------------------------------------------------------
class Query:
    """The query string of one request, refusing parameters the route does not take."""

    def __init__(self, request: Request, allowed: Iterable[str]) -> None:
        self.params = request.query_params
        valid = sorted(allowed)
        unknown = sorted(set(self.params) - set(valid))
        if unknown:
            raise bad_request(
                f"unknown query parameter(s) {_shown(unknown)}; valid: {', '.join(valid) or 'none'}"
            )

    def text(self, name: str) -> str | None:
        """The value, or None when absent or empty (``?status=`` means no filter)."""
        value = self.params.get(name)
        return value if value else None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer parameter within [low, high]."""
        raw = self.params.get(name)
        if raw is None or raw == "":
            return default
        if not _INT.fullmatch(raw):
            raise bad_request(f"{name} must be an integer from {low} to {high}, got {_shown(raw)}")
        return check_int(int(raw), name, low, high)

    def status(self, name: str = "status") -> str | None:
        """A status word (422 if it is not one of the six)."""
        value = self.text(name)
        return None if value is None else parse_state(value)

    def name(self, name: str, kind: str) -> str | None:
        """A queue or task name (422 if it cannot be one)."""
        value = self.text(name)
        return None if value is None else check_name(kind, value)

    def time(self, name: str) -> float | None:
        """An ISO-8601 time parameter."""
        value = self.text(name)
        return None if value is None else parse_time(value, name)


# -- job items -------------------------------------------------------------------------------------
def check_job_item(data: object, where: str = "the request body") -> dict[str, Any]:
    """Check one ``POST /api/jobs`` item's fields and types; returns the item for ``App``."""
    if not isinstance(data, dict):
        raise bad_request(f"{where} must be a JSON object with a 'task', got {type(data).__name__}")
    reject_unknown(data, ITEM_FIELDS, where)
    item = {k: v for k, v in data.items() if v is not None}
    if "task" not in item:
        raise bad_request(f"{where} needs 'task': the name of a registered task")
    if not isinstance(item["task"], str):
        raise bad_request(f"task must be a string, got {_shown(item['task'])}")
    check_name("task", item["task"])
    if not isinstance(item.get("args", []), list):
        raise bad_request(f"args must be a JSON array, got {type(item['args']).__name__}")
    if not isinstance(item.get("kwargs", {}), dict):
        raise bad_request(f"kwargs must be a JSON object, got {type(item['kwargs']).__name__}")
    if "queue" in item:
        if not isinstance(item["queue"], str):
            raise bad_request(f"queue must be a string, got {_shown(item['queue'])}")
        check_name("queue", item["queue"])
    if "delay" in item and "run_at" in item:
        raise bad_request("give delay or run_at, not both")
    if "delay" in item:
        delay = item["delay"]
        if (
            isinstance(delay, bool)
            or not isinstance(delay, (int, float))
            or not 0 <= delay <= MAX_DELAY_SECONDS
        ):
            raise bad_request(f"delay must be seconds from 0 to {MAX_DELAY_SECONDS:.0f}, got {_shown(delay)}")
    if "run_at" in item:
        item["run_at"] = parse_time(item["run_at"], "run_at")
    if "priority" in item:
        check_int(item["priority"], "priority", -MAX_PRIORITY - 1, MAX_PRIORITY)
    if "max_attempts" in item:
        check_int(item["max_attempts"], "max_attempts", 1, MAX_ATTEMPTS)
    for field in ("key", "key_mode", "on_complete"):
        if field in item and not isinstance(item[field], str):
            raise bad_request(f"{field} must be a string, got {_shown(item[field])}")
    if item["task"] == HTTP_TASK:
        if item.get("args"):
            raise bad_request(f"{HTTP_TASK} takes kwargs only (url, method, json|body, headers, timeout)")
        try:
            check_http_kwargs(item.get("kwargs", {}))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
    return item


def check_job_items(data: object) -> tuple[list[dict[str, Any]], bool]:
    """One item (an object) or a batch (an array of objects); returns the items and whether a batch."""
    if isinstance(data, list):
        if not 1 <= len(data) <= MAX_BATCH:
            raise bad_request(f"a batch holds 1 to {MAX_BATCH} jobs, got {len(data)}")
        return [check_job_item(entry, f"item {i}") for i, entry in enumerate(data)], True
    return [check_job_item(data)], False
