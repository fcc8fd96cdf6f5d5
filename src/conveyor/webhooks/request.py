"""What a ``conveyor.http`` job does: check the request its kwargs describe, send it, classify the answer.

2xx is success; connection errors, timeouts, 408, 429 and 5xx are transient (a
``Retry-After`` header sets the delay); redirects and other 4xx are permanent.

httpx is imported only when a request is sent: the embedded default installs
without it, and only a worker that runs HTTP jobs needs it.
"""

from __future__ import annotations

import json as jsonlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..builder import check_url
from ..context import running_job
from ..errors import ConveyorError, Permanent, RetryAfter
from ..tracing import outgoing_headers
from .signing import SIGNATURE_HEADER, sign

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("conveyor.http")

#: The name of the built-in task.
HTTP_TASK = "conveyor.http"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
#: How much of a response body the audit trail keeps, and how much a job's result keeps.
EXCERPT_CHARS = 2000
RESULT_BODY_BYTES = 64 * 1024
#: A far side asking for more than a day is capped to a day (the attempt still counts).
MAX_RETRY_AFTER = 86400.0
USER_AGENT = "conveyor-http/1"

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
_RESERVED_HEADERS = frozenset({SIGNATURE_HEADER.lower(), "content-length", "host", "transfer-encoding"})
#: The kwargs a ``conveyor.http`` job takes.
HTTP_KWARGS = ("url", "method", "json", "body", "headers", "timeout")


class HTTPTransientError(ConveyorError):
    """A response or network failure worth retrying (5xx, 408, 429, timeout, connection error)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


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
    unknown = sorted(set(kwargs) - set(HTTP_KWARGS))
    if unknown:
        raise ValueError(f"{HTTP_TASK} got unknown kwargs {unknown}; valid: {', '.join(HTTP_KWARGS)}")
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
    from email.utils import parsedate_to_datetime  # an HTTP-date is rare: not worth importing email early

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
    context = running_job()
    if context is not None:
        headers["X-Conveyor-Job-Id"] = context.id
        headers["X-Conveyor-Attempt"] = str(context.attempt)
    # The attempt's span (or, without OpenTelemetry, the trace the job was enqueued in).
    present = {name.lower() for name in headers}
    for name, value in outgoing_headers(None if context is None else context.trace_context).items():
        if name.lower() not in present:  # a traceparent the job's own headers set wins
            headers[name] = value
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
