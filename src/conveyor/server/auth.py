"""API keys: where they come from, their roles, and a constant-time check of ``x-api-key``.

An entry of ``CONVEYOR_API_KEYS`` (or a line of ``--api-key-file``) is ``KEY`` (an
admin key), ``ROLE:KEY`` or ``ROLE:NAME:KEY``, ROLE one of ``read``, ``write``,
``admin``. The action trail names a key by ``ROLE:NAME``, or ``ROLE:`` and the
first 8 hex digits of its SHA-256 when it has no name: never by the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from ..actions import Actor
from ..errors import ConfigurationError

log = logging.getLogger("conveyor.server")

API_KEYS_ENV = "CONVEYOR_API_KEYS"
#: Shorter keys are accepted but warned about: they can be guessed.
MIN_KEY_LENGTH = 16

Role = Literal["read", "write", "admin"]
#: The roles, each allowing everything the ones before it do.
ROLES: tuple[Role, ...] = get_args(Role)
#: What a named key's NAME may be.
KEY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Who acts when the server has no key (loopback, same-origin requests only).
LOCAL = Actor("local", "admin")


def allows(role: str, needed: str) -> bool:
    """True when a key of ``role`` may call a route that needs ``needed``."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its role and the name the action trail shows."""

    role: Role
    name: str
    secret: str = ""

    def __repr__(self) -> str:
        return f"ApiKey({self.role}:{self.name})"  # never the secret

    @property
    def actor(self) -> Actor:
        """Who this key is in the action trail: ``ROLE:NAME``."""
        return Actor(f"{self.role}:{self.name}", self.role)


def parse_key(entry: str, index: int = 0) -> ApiKey:
    """``KEY``, ``ROLE:KEY`` or ``ROLE:NAME:KEY`` (a bare KEY is admin); ``index`` names it in errors."""
    parts = entry.split(":")
    role: Role = "admin"
    name = None
    secret = entry
    if len(parts) >= 2 and parts[0] in ROLES:
        role = parts[0]
        if len(parts) == 2:
            secret = parts[1]
        else:
            name, secret = parts[1], ":".join(parts[2:])
            if not KEY_NAME.match(name):
                raise ConfigurationError(
                    f"API key #{index + 1}: the name {name!r} must match {KEY_NAME.pattern} "
                    "(entries are KEY, ROLE:KEY or ROLE:NAME:KEY)"
                )
    if not secret:
        raise ConfigurationError(f"API key #{index + 1} ({role}) has an empty key after the role")
    return ApiKey(role, name or hashlib.sha256(secret.encode()).hexdigest()[:8], secret)


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
        if len(parse_key(key, index).secret) < MIN_KEY_LENGTH:
            log.warning("API key #%d is shorter than %d characters: easy to guess", index + 1, MIN_KEY_LENGTH)
    return unique


def _fingerprint(value: bytes) -> bytes:
    # Comparing fixed-length digests keeps even the length of a key out of the timing.
    return hashlib.sha256(value).digest()


class KeyChecker:
    """Checks a presented key against every configured one, in constant time, and names its role."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [parse_key(entry, index) for index, entry in enumerate(keys)]
        self._digests = [_fingerprint(k.secret.encode()) for k in self._keys]

    @property
    def enabled(self) -> bool:
        """False when no key is configured (loopback-only mode)."""
        return bool(self._digests)

    def identify(self, presented: bytes) -> ApiKey | None:
        """The configured key ``presented`` is, or None; compares against all of them every time."""
        candidate = _fingerprint(presented)
        found = None
        for key, digest in zip(self._keys, self._digests, strict=True):
            if hmac.compare_digest(candidate, digest) and found is None:
                found = key
        return found

    def matches(self, presented: bytes) -> bool:
        """True if ``presented`` equals a configured key."""
        return self.identify(presented) is not None


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
