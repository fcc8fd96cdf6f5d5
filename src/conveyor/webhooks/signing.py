"""Request signing: ``X-Conveyor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``.

Every ``conveyor.http`` request is signed with ``CONVEYOR_SIGNING_SECRET`` (or the App's
``signing_secret`` setting), so the receiver can check it with :func:`verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Sequence

from ..config import Settings
from ..errors import ConveyorError

SIGNATURE_HEADER = "X-Conveyor-Signature"
SIGNING_SECRET_ENV = "CONVEYOR_SIGNING_SECRET"


class InvalidSignature(ConveyorError, ValueError):
    """A request whose ``X-Conveyor-Signature`` is missing, malformed, wrong or too old."""


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


def signing_secret(settings: Settings | None = None) -> str | None:
    """The secret requests are signed with: the ``signing_secret`` setting, else the env."""
    configured = settings.signing_secret if settings is not None else None
    return configured or os.environ.get(SIGNING_SECRET_ENV) or None
