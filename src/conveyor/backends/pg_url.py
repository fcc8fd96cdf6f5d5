"""PostgreSQL backend URLs: Conveyor's own query parameters, split from what libpq takes.

``postgresql://user:pass@host:5432/db?schema=conveyor&pool_max=10&sslmode=require``:
``schema``, ``pool_min``, ``pool_max``, ``pool_timeout``, ``listen``, ``poll``,
``prepare_threshold`` and ``worker_commit`` are Conveyor's; every other parameter goes to libpq unchanged
(and is checked by libpq's own parser, so a typo fails here, not at the first query).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import BadURL

OURS = frozenset(
    {"schema", "pool_min", "pool_max", "pool_timeout", "listen", "poll", "prepare_threshold", "worker_commit"}
)
SCHEMA_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
DEFAULT_SCHEMA = "conveyor"

#: libpq settings Conveyor applies unless the URL sets them: fail fast instead of hanging
#: when the server or the network goes away (a silent peer is detected in about 20 s).
LIBPQ_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "3",
    "keepalives_count": "3",
    "tcp_user_timeout": "20000",
    "application_name": "conveyor",
}


@dataclass(frozen=True)
class PostgresOptions:
    """Everything a PostgreSQL URL says, parsed and checked."""

    #: The libpq URL, with Conveyor's parameters removed and the fail-fast defaults added.
    conninfo: str
    schema: str = DEFAULT_SCHEMA
    pool_min: int = 1
    pool_max: int = 10
    #: Seconds to wait for a free (or reconnected) pooled connection before raising.
    pool_timeout: float = 5.0
    #: Wake idle workers with LISTEN/NOTIFY; off for poolers that do not support it.
    listen: bool = True
    #: Seconds between polls when LISTEN is off or its connection is down.
    poll: float = 1.0
    #: Executions of a query before psycopg prepares it server-side; None never prepares
    #: (for poolers in transaction mode that cannot keep prepared statements).
    prepare_threshold: int | None = 0
    #: synchronous_commit of the worker's own writes (claim, renewal, outcomes, reaping):
    #: ``off`` (default) saves a WAL flush per round trip, and a write lost in a server crash
    #: only makes a job run again; ``on`` makes them as durable as enqueues.
    worker_commit: str = "off"

    @property
    def channel(self) -> str:
        """The NOTIFY channel of this schema (PostgreSQL truncates identifiers to 63 bytes)."""
        return f"conveyor.{self.schema}"[:63]

    @property
    def finished_channel(self) -> str:
        """The channel telling ``Job.result`` waiters which jobs finished (a schema name has no
        dot, so it never equals another schema's ``channel``)."""
        return f"conveyor.finished.{self.schema}"[:63]


def _int(name: str, raw: str, url: str, low: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadURL(f"{name} must be an integer, got {raw!r} in {redact(url)!r}") from None
    if value < low:
        raise BadURL(f"{name} must be >= {low}, got {value} in {redact(url)!r}")
    return value


def _seconds(name: str, raw: str, url: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise BadURL(f"{name} must be seconds, got {raw!r} in {redact(url)!r}") from None
    if not 0 < value < 86400:
        raise BadURL(f"{name} must be between 0 and 86400 seconds, got {raw!r} in {redact(url)!r}")
    return value


def _bool(name: str, raw: str, url: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadURL(f"{name} must be true or false, got {raw!r} in {redact(url)!r}")


def redact(url: str) -> str:
    """The URL with its password (in the netloc or a ``password=`` parameter) shown as ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    if "password=" in parts.query:
        query = [
            (k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def parse_postgres_url(url: str) -> PostgresOptions:
    """Split a ``postgresql://`` URL into Conveyor's options and a libpq connection string."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise BadURL(f"not a PostgreSQL URL: {redact(url)!r} (expected postgresql://user@host/db)")
    params = parse_qsl(parts.query, keep_blank_values=True)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in params:
        if name in OURS:
            ours[name] = value
        else:
            theirs.append((name, value))
    schema = ours.get("schema", DEFAULT_SCHEMA)
    if not SCHEMA_PATTERN.fullmatch(schema):
        raise BadURL(
            f"invalid schema name {schema!r} in {redact(url)!r}: expected ^[A-Za-z_][A-Za-z0-9_]{{0,62}}$"
        )
    pool_min = _int("pool_min", ours.get("pool_min", "1"), url, 0)
    pool_max = _int("pool_max", ours.get("pool_max", "10"), url, 1)
    if pool_max < max(pool_min, 1):
        raise BadURL(f"pool_max ({pool_max}) must be >= pool_min ({pool_min}) in {redact(url)!r}")
    prepare: int | None = 0
    raw_prepare = ours.get("prepare_threshold")
    if raw_prepare is not None:
        prepare = (
            None
            if raw_prepare.lower() in ("", "none", "off")
            else _int("prepare_threshold", raw_prepare, url, 0)
        )
    worker_commit = ours.get("worker_commit", "off").lower()
    if worker_commit not in ("off", "on"):
        raise BadURL(f"worker_commit must be off or on, got {worker_commit!r} in {redact(url)!r}")
    given = {name for name, _ in theirs}
    theirs += [(k, v) for k, v in LIBPQ_DEFAULTS.items() if k not in given]
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(theirs)))
    _check_libpq(conninfo, url)
    return PostgresOptions(
        conninfo=conninfo,
        schema=schema,
        pool_min=pool_min,
        pool_max=pool_max,
        pool_timeout=_seconds("pool_timeout", ours.get("pool_timeout", "5"), url),
        listen=_bool("listen", ours.get("listen", "true"), url),
        poll=_seconds("poll", ours.get("poll", "1"), url),
        prepare_threshold=prepare,
        worker_commit=worker_commit,
    )


def _check_libpq(conninfo: str, url: str) -> None:
    """Let libpq's own parser refuse unknown or malformed parameters now."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(conninfo)
    except ProgrammingError as exc:
        raise BadURL(f"bad PostgreSQL URL {redact(url)!r}: {exc}") from None
