"""Configuration's one home: arguments, then ``CONVEYOR_*`` variables, then defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .durations import parse_duration
from .errors import ConfigurationError

DEFAULT_URL = "sqlite:///conveyor.db"

#: The finished states the pruner deletes, and after how long (None: never, a person decides).
RETENTION_STATES = ("completed", "cancelled", "failed")
DEFAULT_RETENTION: dict[str, float | None] = {
    "completed": 7 * 86400.0,
    "cancelled": 7 * 86400.0,
    "failed": None,
}
_NEVER = ("never", "none", "off", "forever")


def parse_retention(value: object, state: str) -> float | None:
    """A retention period: seconds, a timedelta, a duration such as ``"7d"``, or None/"never"."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NEVER):
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ConfigurationError(f"retention of {state}: {exc}, or 'never'") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(
            f"retention of {state} must be a duration ('7d', seconds, a timedelta) or None, got {value!r}"
        )
    if not seconds > 0:
        raise ConfigurationError(f"retention of {state} must be > 0 seconds (or 'never'), got {value!r}")
    return seconds


def load_retention(overrides: Mapping[str, object] | None) -> dict[str, float | None]:
    """Retention per state: ``overrides``, then ``CONVEYOR_RETENTION_<STATE>``, then the defaults."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigurationError(f"retention must be a dict such as {{'completed': '1d'}}, got {overrides!r}")
    unknown = sorted(set(overrides or ()) - set(RETENTION_STATES))
    if unknown:
        raise ConfigurationError(
            f"retention for unknown state(s) {unknown}: the pruner keeps {', '.join(RETENTION_STATES)}"
        )
    retention = dict(DEFAULT_RETENTION)
    for state in RETENTION_STATES:
        raw = os.environ.get(f"CONVEYOR_RETENTION_{state.upper()}")
        if raw:
            retention[state] = parse_retention(raw, state)
        if overrides is not None and state in overrides:
            retention[state] = parse_retention(overrides[state], state)
    return retention


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Settings:
    """Every tunable with its default. Durations are seconds."""

    url: str = DEFAULT_URL
    #: A claimed job's visibility timeout; renewed by heartbeat while it runs.
    lease: float = 30.0
    #: Heartbeat interval; ``None`` means a third of the lease.
    heartbeat: float | None = None
    #: How often the reaper looks for lapsed leases.
    reaper_interval: float = 5.0
    #: How long graceful shutdown waits for running jobs.
    grace: float = 30.0
    #: Jobs one worker process runs at once.
    concurrency: int = 5
    #: The largest accepted payload (the JSON of args and kwargs), in bytes.
    max_payload_bytes: int = 1024 * 1024
    #: How long the key of a completed job keeps absorbing duplicates.
    key_retention: float = 86400.0
    #: The HMAC secret ``conveyor.http`` requests are signed with (unsigned when unset).
    signing_secret: str | None = field(default=None, repr=False)
    #: How long the pruner keeps finished jobs, per state, in seconds (None: never pruned).
    retention: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_RETENTION))
    #: How often the scheduler looks for due schedule ticks.
    scheduler_interval: float = 1.0
    #: How often the pruner deletes finished jobs past their retention.
    pruner_interval: float = 10.0
    #: How often the alerter counts recent failures.
    alerter_interval: float = 5.0

    @property
    def heartbeat_interval(self) -> float:
        """The effective heartbeat interval."""
        return self.heartbeat if self.heartbeat is not None else self.lease / 3

    def validate(self) -> Settings:
        """Refuse settings that cannot work together, naming the fix."""
        if self.lease <= 0:
            raise ConfigurationError(f"lease must be > 0 seconds, got {self.lease!r}")
        if self.heartbeat is not None and self.heartbeat <= 0:
            raise ConfigurationError(f"heartbeat must be > 0 seconds, got {self.heartbeat!r}")
        if self.heartbeat_interval > self.lease / 2:
            raise ConfigurationError(
                f"heartbeat interval {self.heartbeat_interval:g}s is not well inside the lease "
                f"{self.lease:g}s: a lease would lapse between two heartbeats; use a heartbeat "
                f"of at most {self.lease / 2:g}s (default: a third of the lease)"
            )
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {self.concurrency!r}")
        if self.grace < 0:
            raise ConfigurationError(f"grace must be >= 0 seconds, got {self.grace!r}")
        if self.reaper_interval <= 0:
            raise ConfigurationError(f"reaper_interval must be > 0, got {self.reaper_interval!r}")
        if self.max_payload_bytes < 1:
            raise ConfigurationError(f"max_payload_bytes must be >= 1, got {self.max_payload_bytes!r}")
        for name in ("scheduler_interval", "pruner_interval", "alerter_interval"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0 seconds, got {getattr(self, name)!r}")
        if self.key_retention < 0:
            raise ConfigurationError(f"key_retention must be >= 0, got {self.key_retention!r}")
        return self


def load_settings(**overrides: Any) -> Settings:
    """Settings from ``overrides`` (None means unset), then the environment, then defaults."""
    d = Settings()
    env = {
        "url": os.environ.get("CONVEYOR_URL") or d.url,
        "lease": _env_float("CONVEYOR_LEASE", d.lease),
        "grace": _env_float("CONVEYOR_GRACE", d.grace),
        "concurrency": int(_env_float("CONVEYOR_CONCURRENCY", d.concurrency)),
        "max_payload_bytes": int(_env_float("CONVEYOR_MAX_PAYLOAD_BYTES", d.max_payload_bytes)),
        "key_retention": _env_float("CONVEYOR_KEY_RETENTION", d.key_retention),
        "signing_secret": os.environ.get("CONVEYOR_SIGNING_SECRET") or None,
    }
    values = {**env, **{k: v for k, v in overrides.items() if v is not None}}
    values["retention"] = load_retention(overrides.get("retention"))
    return Settings(**values).validate()
