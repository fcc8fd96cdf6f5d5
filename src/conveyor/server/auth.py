"""API keys: where they come from, and a constant-time check of the ``x-api-key`` header."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigurationError

log = logging.getLogger("conveyor.server")

API_KEYS_ENV = "CONVEYOR_API_KEYS"
#: Shorter keys are accepted but warned about: they can be guessed.
MIN_KEY_LENGTH = 16


def load_api_keys(api_key_file: str | Path | None = None, environ: dict[str, str] | None = None) -> list[str]:
    """Keys from ``CONVEYOR_API_KEYS`` (comma separated) and ``api_key_file`` (one a line, ``#`` comments)."""
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in env.get(API_KEYS_ENV, "").split(",")]
    if api_key_file is not None:
        try:
            lines = Path(api_key_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError(f"cannot read --api-key-file {str(api_key_file)!r}: {exc}") from None
        keys += [line.strip() for line in lines if not line.lstrip().startswith("#")]
    unique = list(dict.fromkeys(k for k in keys if k))
    for index, key in enumerate(unique):
        if any(ord(c) < 0x21 or ord(c) > 0x7E for c in key):
            # Never echo the key itself: say which one by position only.
            raise ConfigurationError(f"API key #{index + 1} has characters outside printable ASCII")
        if len(key) < MIN_KEY_LENGTH:
            log.warning("API key #%d is shorter than %d characters: easy to guess", index + 1, MIN_KEY_LENGTH)
    return unique


def _fingerprint(value: bytes) -> bytes:
    # Comparing fixed-length digests keeps even the length of a key out of the timing.
    return hashlib.sha256(value).digest()


class KeyChecker:
    """Checks a presented key against every configured one, in constant time."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests: Sequence[bytes] = [_fingerprint(k.encode()) for k in keys]

    @property
    def enabled(self) -> bool:
        """False when no key is configured (loopback-only mode)."""
        return bool(self._digests)

    def matches(self, presented: bytes) -> bool:
        """True if ``presented`` equals a configured key; compares against all of them every time."""
        candidate = _fingerprint(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def same_loopback_origin(host_header: str | None, origin: str | None) -> bool:
    """In key-less mode: refuse requests a web page on another origin makes to this server.

    Without keys, a browser tab could otherwise POST to ``127.0.0.1`` (CSRF), or reach it
    through a DNS name that resolves to loopback (DNS rebinding).
    """
    if host_header is None:
        return True
    hostname = urlsplit(f"//{host_header}").hostname or ""
    if not is_loopback(hostname):
        return False
    return origin is None or urlsplit(origin).netloc == host_header
