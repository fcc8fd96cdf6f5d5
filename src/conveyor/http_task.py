"""The built-in task ``conveyor.http``, request signing, and completion callbacks (``on_complete``).

A ``conveyor.http`` job sends one HTTP request: 2xx is success; connection
errors, timeouts, 408, 429 and 5xx are transient (a ``Retry-After`` header sets
the delay); redirects and other 4xx are permanent. Every request is signed:
``X-Conveyor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``
with ``CONVEYOR_SIGNING_SECRET``, so the receiver can check it with
:func:`verify_signature`.

httpx is imported only when a request is sent: the embedded default installs
without it, and only a worker that runs HTTP jobs needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json as jsonlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .context import _current
from .errors import ConveyorError, Permanent, RetryAfter

if TYPE_CHECKING:
    import httpx

    from .app import App
    from .backends.base import ClaimedJob, NewJob, Outcome
    from .task import Task

log = logging.getLogger("conveyor.http")

#: The name of the built-in task.
HTTP_TASK = "conveyor.http"
SIGNATURE_HEADER = "X-Conveyor-Signature"
SIGNING_SECRET_ENV = "CONVEYOR_SIGNING_SECRET"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
#: How much of a response body the audit trail keeps, and how much a job's result keeps.
EXCERPT_CHARS = 2000
RESULT_BODY_BYTES = 64 * 1024
#: A far side asking for more than a day is capped to a day (the attempt still counts).
MAX_RETRY_AFTER = 86400.0
USER_AGENT = "conveyor-http/1"
#: The completion callback of a job in ``completed`` or ``failed``.
CALLBACK_EVENTS = frozenset({"completed", "failed"})

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
_RESERVED_HEADERS = frozenset({SIGNATURE_HEADER.lower(), "content-length", "host", "transfer-encoding"})
_KWARGS = ("url", "method", "json", "body", "headers", "timeout")


class InvalidSignature(ConveyorError, ValueError):
    """A request whose ``X-Conveyor-Signature`` is missing, malformed, wrong or too old."""


class HTTPTransientError(ConveyorError):
    """A response or network failure worth retrying (5xx, 408, 429, timeout, connection error)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


# -- signing ---------------------------------------------------------------------------------------
def _as_bytes(body: bytes | bytearray | memoryview | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The ``X-Conveyor-Signature`` value for ``body``: ``t=<unix seconds>,v1=<hex>``."""
    if not secret:
        raise ValueError("the signing secret is empty; set CONVEYOR_SIGNING_SECRET")
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, _as_bytes(body))}"


def verify_signature(
    body: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    tolerance: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """Check a request from Conveyor: returns True, or raises InvalidSignature saying why.

    ``body`` is the raw request body exactly as received (bytes; do not re-serialise
    parsed JSON). ``header`` is the ``X-Conveyor-Signature`` value. ``secret`` may be a
    list during a rotation (any one may match). A timestamp more than ``tolerance``
    seconds from now is refused, so a captured request cannot be replayed later.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not any(secrets):
        raise ValueError("no signing secret given to verify against")
    if not header:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature(f"malformed {SIGNATURE_HEADER} {header[:100]!r}: expected 't=<unix>,v1=<hex>'")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature(
            f"signature timestamp {timestamp} is {abs(current - timestamp):.0f}s from now, "
            f"outside the tolerance of {tolerance:g}s (a replay, or a clock out of sync)"
        )
    payload = _as_bytes(body)
    matched = False
    for key in secrets:
        expected = _digest(key, timestamp, payload).encode()
        for candidate in candidates:
            # Keep comparing after a match: the time taken says nothing about which matched.
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise InvalidSignature("signature does not match the body (wrong secret or tampered body)")
    return True


def signing_secret(app: App | None = None) -> str | None:
    """The secret requests are signed with: the App's ``signing_secret`` setting, else the env."""
    configured = app.settings.signing_secret if app is not None else None
    return configured or os.environ.get(SIGNING_SECRET_ENV) or None


# -- the request a job describes -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HTTPRequestSpec:
    """The validated kwargs of a ``conveyor.http`` job."""

    url: str
    method: str
    content: bytes
    headers: dict[str, str]
    timeout: float


def check_http_kwargs(kwargs: Mapping[str, Any]) -> HTTPRequestSpec:
    """Validate the kwargs of a ``conveyor.http`` job; ValueError names the bad field and what is valid."""
    unknown = sorted(set(kwargs) - set(_KWARGS))
    if unknown:
        raise ValueError(f"{HTTP_TASK} got unknown kwargs {unknown}; valid: {', '.join(_KWARGS)}")
    from .app import check_url  # here, not at the top: app.py registers this module's task

    if "url" not in kwargs:
        raise ValueError(f"{HTTP_TASK} needs kwargs.url (an absolute http:// or https:// URL)")
    url = check_url(kwargs["url"], "kwargs.url")
    method = kwargs.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ValueError(f"kwargs.method must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    if "json" in kwargs and kwargs.get("body") is not None:
        raise ValueError("give kwargs.json or kwargs.body, not both")
    body = kwargs.get("body")
    headers: dict[str, str] = {}
    if "json" in kwargs:
        try:
            content = jsonlib.dumps(kwargs["json"], separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"kwargs.json is not JSON-serialisable: {exc}") from None
        headers["Content-Type"] = "application/json"
    elif body is None:
        content = b""
    elif isinstance(body, str):
        content = body.encode()
    else:
        raise ValueError(f"kwargs.body must be a string, got {type(body).__name__}")
    raw_headers = kwargs.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        raise ValueError(f"kwargs.headers must be an object of strings, got {type(raw_headers).__name__}")
    for name, value in raw_headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"kwargs.headers has an invalid header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"kwargs.headers may not set {name!r}: Conveyor sets it")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"kwargs.headers[{name!r}] must be a string without line breaks, got {value!r}")
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers[name] = value
    timeout = kwargs.get("timeout", DEFAULT_TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_TIMEOUT
    ):
        raise ValueError(f"kwargs.timeout must be seconds in (0, {MAX_TIMEOUT:g}], got {timeout!r}")
    return HTTPRequestSpec(url, method.upper(), content, headers, float(timeout))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date), capped at a day."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return min(max(0.0, when.timestamp() - current), MAX_RETRY_AFTER)


def _where(method: str, url: str) -> str:
    # The query string and credentials may hold secrets; messages keep the rest.
    parts = urlsplit(url)
    return f"{method} {parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


# -- the shared client -----------------------------------------------------------------------------
_client: httpx.Client | None = None
_client_pid = 0
_client_lock = threading.Lock()


def _http_client() -> httpx.Client:
    """One pooled client per process (a forked child makes its own)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        with _client_lock:
            if _client is None or _client_pid != os.getpid():
                try:
                    import httpx
                except ImportError:
                    raise Permanent(
                        f"{HTTP_TASK} needs httpx on the worker: pip install 'conveyor[server]'"
                    ) from None
                _client = httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})
                _client_pid = os.getpid()
    return _client


def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break  # the rest is not kept: a huge answer must not fill the worker's memory
    return b"".join(chunks)[:limit]


def send_request(spec: HTTPRequestSpec, secret: str | None) -> dict[str, Any]:
    """Send one request; return ``{status_code, body}`` on 2xx, else raise what the retry policy needs."""
    import httpx

    headers = dict(spec.headers)
    if secret:
        headers[SIGNATURE_HEADER] = sign(spec.content, secret)
    context = _current.get()
    if context is not None:
        headers["X-Conveyor-Job-Id"] = context.id
        headers["X-Conveyor-Attempt"] = str(context.attempt)
    where = _where(spec.method, spec.url)
    try:
        with _http_client().stream(
            spec.method, spec.url, content=spec.content, headers=headers, timeout=spec.timeout
        ) as response:
            raw = _read_limited(response, RESULT_BODY_BYTES)
    except httpx.TimeoutException as exc:
        raise HTTPTransientError(f"{where} timed out after {spec.timeout:g}s ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise HTTPTransientError(f"{where} failed: {type(exc).__name__}: {exc}") from exc
    code = response.status_code
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    if context is not None:
        context.record_response(code, text[:EXCERPT_CHARS])
    if 200 <= code < 300:
        return {"status_code": code, "body": text}
    summary = f"{where} answered HTTP {code} {response.reason_phrase}".rstrip()
    if code in (408, 429) or code >= 500:
        delay = parse_retry_after(response.headers.get("Retry-After"))
        if delay is not None:
            raise RetryAfter(delay, f"{summary}; retrying after {delay:g}s as its Retry-After asks")
        raise HTTPTransientError(summary, code)
    if 300 <= code < 400:
        location = response.headers.get("Location", "")
        raise Permanent(f"{summary}: redirects are not followed; point the job at {location!r} instead")
    raise Permanent(f"{summary}: a client error, not retried")


# -- registration ------------------------------------------------------------------------------------
def register_builtin_tasks(app: App) -> Task[Any, Any]:
    """Register ``conveyor.http`` on ``app`` (idempotent); returns the task."""
    existing = app.tasks.get(HTTP_TASK)
    if existing is not None and existing.fn is not None:
        return existing

    def conveyor_http(*args: Any, **kwargs: Any) -> dict[str, Any]:
        """Send the HTTP request the job's kwargs describe: {url, method, json|body, headers, timeout}."""
        if args:
            raise Permanent(f"{HTTP_TASK} takes keyword arguments only ({', '.join(_KWARGS)}), got args")
        try:
            spec = check_http_kwargs(kwargs)
        except ValueError as exc:
            raise Permanent(str(exc)) from None
        return send_request(spec, signing_secret(app))

    return app.task(name=HTTP_TASK, timeout=MAX_TIMEOUT + 30)(conveyor_http)


# -- completion callbacks ------------------------------------------------------------------------------
def completion_payload(job: ClaimedJob, outcome: Outcome, max_result_chars: int) -> dict[str, Any]:
    """What an ``on_complete`` URL receives about a finished job."""
    result: Any = None
    omitted = False
    if outcome.result is not None:
        if len(outcome.result) > max_result_chars:
            omitted = True  # too big to travel in a callback; GET /api/jobs/{id} has it
        else:
            result = jsonlib.loads(outcome.result)
    finished = outcome.finished_at if outcome.finished_at is not None else time.time()
    payload = {
        "event": f"job.{outcome.kind}",
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "status": outcome.kind,
        "result": result,
        "error": outcome.error,
        "attempts": outcome.attempt,
        "max_attempts": job.max_attempts,
        "key": job.key,
        "finished_at": datetime.fromtimestamp(finished, UTC).isoformat(),
    }
    if omitted:
        payload["result_omitted"] = True
    return payload


def completion_callback(app: App, job: ClaimedJob, outcome: Outcome) -> NewJob | None:
    """The ``conveyor.http`` job that POSTs a finished job's outcome to its ``on_complete``.

    None unless the job has ``on_complete`` and the outcome is completed or failed. The
    worker stores it together with the outcome (``Outcome.follow_ups``), so a crash can
    never record the outcome and lose its callback.
    """
    if not job.on_complete or outcome.kind not in CALLBACK_EVENTS:
        return None
    from .task import EnqueueOptions

    payload = completion_payload(job, outcome, app.settings.max_payload_bytes // 2)
    options = EnqueueOptions(
        # The job's own queue: the workers that ran the job serve its callback too.
        queue=job.queue,
        priority=job.priority,
        # One callback per claim, even if an outcome is written twice.
        key=f"conveyor.on_complete:{job.id}:{job.lease_token}",
    )
    task = app.tasks.get(HTTP_TASK) or register_builtin_tasks(app)
    return app._new_job(task, [], {"url": job.on_complete, "json": payload}, options)
