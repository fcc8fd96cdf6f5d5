"""API errors: one exception type, one JSON shape ``{"error": {"code", "message"}}``, one mapping."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from ..errors import (
    AlertNotFound,
    InvalidAlert,
    InvalidArguments,
    InvalidGroup,
    InvalidLimit,
    InvalidName,
    InvalidPayload,
    InvalidSchedule,
    InvalidState,
    InvalidStatus,
    JobNotFound,
    PayloadTooLarge,
    ScheduleNotFound,
    UnknownTask,
)


class ApiError(Exception):
    """An error answered to the client: HTTP status, a stable code, and a message naming the problem."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


def bad_request(message: str) -> ApiError:
    """400: wrong types or values."""
    return ApiError(400, "invalid_request", message)


_ENCODER = msgspec.json.Encoder()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact UTF-8 JSON of dicts, lists and declared shapes (stored payloads are already NaN-free)."""
    return Response(_ENCODER.encode(data), status, headers, media_type="application/json")


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    """The JSON error body for ``error``."""
    return json_response({"error": {"code": error.code, "message": error.message}}, error.status, headers)


def from_exception(exc: BaseException, *, input_checks: bool = False) -> ApiError | None:
    """The API error an exception means, or None for an unexpected one (a 500).

    ``input_checks``: the call validated client input with plain TypeError/ValueError
    (the model's checks of priority, key, on_complete...), so those are a 400 too.
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, (JobNotFound, ScheduleNotFound, AlertNotFound)):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, InvalidSchedule):
        return ApiError(400, "invalid_schedule", str(exc))
    if isinstance(exc, InvalidAlert):
        return ApiError(400, "invalid_alert", str(exc))
    if isinstance(exc, InvalidState):
        return ApiError(409, "invalid_state", str(exc))
    if isinstance(exc, PayloadTooLarge):
        return ApiError(413, "payload_too_large", str(exc))
    if isinstance(exc, UnknownTask):
        return ApiError(422, "unknown_task", str(exc))
    if isinstance(exc, InvalidStatus):
        return ApiError(422, "unknown_status", str(exc))
    if isinstance(exc, InvalidArguments):
        return ApiError(422, "invalid_arguments", str(exc))
    if isinstance(exc, InvalidLimit):
        return ApiError(422, "invalid_limit", str(exc))
    if isinstance(exc, InvalidGroup):
        return ApiError(422, "invalid_group", str(exc))
    if isinstance(exc, InvalidName):
        return ApiError(422, "invalid_name", str(exc))
    if isinstance(exc, InvalidPayload):
        return ApiError(400, "invalid_payload", str(exc))
    if input_checks and isinstance(exc, (TypeError, ValueError)):
        # The model's own argument checks (priority, max_attempts, key, on_complete, run_at).
        return bad_request(str(exc))
    return None
