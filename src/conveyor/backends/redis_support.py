"""Plumbing of the Redis backend: URL options, clients, Lua scripts, and the record codec.

Kept apart from :mod:`conveyor.backends.redis` so the backend module reads as
the Backend protocol and little else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from importlib import resources
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import ClusterDownError
from redis.retry import Retry

from ..errors import BackendUnavailable, BadURL
from . import kit
from .base import AttemptRecord, JobRecord, Outcome

log = logging.getLogger("conveyor.redis")

#: Every script file in ``backends/lua`` (``lib.lua`` is prepended to each).
SCRIPT_NAMES = (
    "actions_list",
    "actions_record",
    "alert_fire",
    "alert_save",
    "audits",
    "progress",
    "workers_beat",
    "workers_live",
    "workers_remove",
    "cancel",
    "claim",
    "clock",
    "delete",
    "delete_many",
    "enqueue",
    "extend",
    "failures_since",
    "finish",
    "gauges",
    "get",
    "list",
    "next_due",
    "purge",
    "queue_update",
    "queue_usage",
    "reap",
    "resubmit",
    "schedule_delete",
    "schedule_fire",
    "schedule_pause",
    "schedule_save",
    "stats",
    "throughput",
)

#: URL query options Conveyor reads itself; all others go to redis-py.
OWN_OPTIONS = ("prefix", "cluster", "audit_max")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: The longest a single BLPOP of ``wait_for_jobs`` blocks (a longer wait simply loops).
MAX_BLOCK = 10.0
#: Socket timeouts unless the URL sets its own: fail fast when the server is gone.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """What a Conveyor Redis URL says: redis-py's URL, and Conveyor's own options."""

    client_url: str
    #: ``client_url`` without socket_timeout: the blocking connection sets its own.
    blocking_url: str
    prefix: str
    cluster: bool | None  # None: detect
    audit_max: int


def parse_redis_url(url: str) -> RedisOptions:
    """Split ``redis://host:6379/0?prefix=app&cluster=auto`` into redis-py's URL and our options."""
    parts = urlsplit(url)
    scheme = {"redis": "redis", "rediss": "rediss", "valkey": "redis", "valkeys": "rediss"}.get(parts.scheme)
    if scheme is None:
        raise BadURL(f"not a Redis URL: {url!r} (expected redis://host:6379/0)")
    if not parts.hostname:
        raise BadURL(f"Redis URL {url!r} names no host (expected redis://host:6379/0)")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise BadURL(f"Redis URL {url!r} has an invalid port") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in OWN_OPTIONS}
    rest = [(k, v) for k, v in query if k not in OWN_OPTIONS]
    prefix = own.get("prefix", "conveyor")
    if not _PREFIX.match(prefix):
        raise BadURL(f"prefix {prefix!r} in {url!r} must match {_PREFIX.pattern}")
    cluster_word = own.get("cluster", "auto").lower()
    cluster = {"auto": None, "yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
    if cluster_word not in cluster:
        raise BadURL(f"cluster must be auto, yes or no in {url!r}, got {cluster_word!r}")
    try:
        audit_max = int(own.get("audit_max", "100000"))
    except ValueError:
        raise BadURL(f"audit_max must be an integer in {url!r}, got {own['audit_max']!r}") from None
    if audit_max < 1:
        raise BadURL(f"audit_max must be >= 1 in {url!r}")
    client_url = urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), ""))
    blocking = [(k, v) for k, v in rest if k != "socket_timeout"]
    blocking_url = urlunsplit((scheme, parts.netloc, parts.path, urlencode(blocking), ""))
    return RedisOptions(client_url, blocking_url, prefix, cluster[cluster_word], audit_max)


@cache
def script_source(name: str) -> str:
    """The text of ``lua/<name>.lua`` with the shared ``lib.lua`` in front."""
    folder = resources.files("conveyor.backends.lua")
    lib = folder.joinpath("lib.lua").read_text("utf-8")
    return lib + "\n" + folder.joinpath(f"{name}.lua").read_text("utf-8")


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def _retry() -> Retry:
    # Reads and idempotent writes ride out a restart or failover of a second or two.
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 4)


class Clients:
    """The connections of one backend, opened together.

    ``once`` never retries (a claim or finish replayed after a lost reply would
    lease twice or misreport), ``retrying`` retries connection errors with
    backoff (reads and idempotent scripts), and ``blocking`` serves the
    BLPOP of idle workers on connections of its own, with a socket timeout
    longer than any block.
    """

    def __init__(self, options: RedisOptions) -> None:
        cluster = options.cluster
        common: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": CONNECT_TIMEOUT,
        }
        if cluster is None:
            probe = redis.Redis.from_url(
                options.client_url, retry=_no_retry(), socket_timeout=SOCKET_TIMEOUT, **common
            )
            try:
                cluster = bool(probe.info("cluster").get("cluster_enabled"))
            finally:
                probe.close()
        self.cluster = cluster
        factory: Callable[..., Any] = RedisCluster.from_url if cluster else redis.Redis.from_url
        self.once = factory(options.client_url, retry=_no_retry(), socket_timeout=SOCKET_TIMEOUT, **common)
        self.retrying = factory(options.client_url, retry=_retry(), socket_timeout=SOCKET_TIMEOUT, **common)
        self.blocking = factory(
            options.blocking_url, retry=_no_retry(), socket_timeout=MAX_BLOCK + SOCKET_TIMEOUT, **common
        )
        self.scripts: dict[str, Script] = {
            name: self.once.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    def close(self) -> None:
        """Close every connection."""
        for client in (self.once, self.retrying, self.blocking):
            client.close()


class _HasServer(Protocol):
    server: str


P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=_HasServer)


def translate_errors(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Turn redis-py's connection errors into BackendUnavailable naming the server."""

    @wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, ClusterDownError) as exc:
            raise BackendUnavailable(
                f"Redis at {self.server} is unavailable ({type(exc).__name__}: {exc})"
            ) from exc

    return wrapper


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def check_server(client: Any, server: str, prefix: str) -> None:
    """Warn once per process and namespace about a server that can lose jobs, or older than 6.2.

    CONFIG may be renamed or forbidden (managed services): then there is nothing to learn.
    """
    with _warned_lock:
        if (server, prefix) in _warned:
            return
        _warned.add((server, prefix))
    try:
        info = client.info("server")
        version = str(info.get("valkey_version") or info.get("redis_version") or "")
        numbers = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if numbers and numbers < (6, 2) and not info.get("valkey_version"):
            log.warning("Redis %s is older than 6.2, the oldest version Conveyor supports", version)
    except redis.ResponseError:
        pass
    try:
        appendonly = _config_value(client, "appendonly")
        save = _config_value(client, "save")
        eviction = _config_value(client, "maxmemory-policy")
    except redis.ResponseError as exc:  # CONFIG renamed or forbidden: nothing to learn
        log.debug("cannot read the Redis persistence settings: %s", exc)
        return
    if eviction not in (None, "noeviction"):
        log.warning(
            "Redis maxmemory-policy is %s: under memory pressure Redis may evict job keys, losing "
            "jobs and corrupting the queue's indexes; set maxmemory-policy noeviction (see docs/redis.md)",
            eviction,
        )
    if appendonly == "no" and not save:
        log.warning(
            "Redis has no persistence (appendonly no, no RDB save points): a Redis restart loses "
            "every job of namespace %r; set appendonly yes with appendfsync everysec (see docs/redis.md)",
            prefix,
        )
    elif appendonly == "no":
        log.warning(
            "Redis persists only RDB snapshots (save %r): a crash loses the jobs accepted since the "
            "last snapshot; set appendonly yes with appendfsync everysec (see docs/redis.md)",
            save,
        )


def _config_value(client: Any, name: str) -> str | None:
    reply = client.config_get(name)
    if name in reply:
        return str(reply[name])
    for value in reply.values():  # a cluster answers per node
        if isinstance(value, dict) and name in value:
            return str(value[name])
    return None


# -- the stored shapes of records -------------------------------------------------
#: What the client sends: the kit's ATTEMPT_FIELDS after job_id but the payload, which the
#: finish script appends from the job.
_SENT_ATTEMPT_FIELDS = tuple(name for name in kit.ATTEMPT_FIELDS[1:] if name != "payload")
#: The fields of a stored attempt record, in order: the payload last, as the scripts append it.
_STORED_ATTEMPT_FIELDS = (*_SENT_ATTEMPT_FIELDS, "payload")
#: Where ``trace_id`` sits; records from before it existed lack it.
_TRACE_AT = _STORED_ATTEMPT_FIELDS.index("trace_id")


def decode_record(job_id: str, flat: list[str], attempts: list[str] | None = None) -> JobRecord | None:
    """A JobRecord from a job hash (flat HGETALL) and its attempt records."""
    if not flat:
        return None
    stored = dict(zip(flat[::2], flat[1::2], strict=True))
    # A hash holds only the fields that are set; cancel_requested is stored as "1".
    row: dict[str, Any] = {name: stored.get(name) for name in kit.JOB_FIELDS}
    row["id"] = job_id
    row["cancel_requested"] = stored.get("cancel_requested") == "1"
    return kit.job_record(row, (decode_attempt(job_id, text) for text in attempts or ()))


# encode_attempt writes the fields in this order without looking them up by name (it runs
# once per finished job): refuse to load if the kit's attempt fields ever change under it.
if _SENT_ATTEMPT_FIELDS != (
    "attempt", "worker", "started_at", "finished_at", "outcome", "error", "traceback",
    "status_code", "response_excerpt", "trace_id",
):  # fmt: skip
    raise RuntimeError(f"encode_attempt is out of step with kit.ATTEMPT_FIELDS: {_SENT_ATTEMPT_FIELDS}")
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def encode_attempt(o: Outcome) -> str:
    """An attempt's audit record as stored: a compact JSON array of the kit's ATTEMPT_FIELDS
    after ``job_id`` (the job id is the list's key); ``decode_attempt`` reads it back."""
    return _COMPACT_JSON.encode(
        [
            o.attempt, o.worker, o.started_at, o.finished_at, o.kind, o.error, o.traceback,
            o.status_code, o.response_excerpt, o.trace_id,
        ]
    )  # fmt: skip


def decode_attempt(job_id: str, text: str) -> AttemptRecord:
    """An AttemptRecord from its stored JSON array (see ``encode_attempt``)."""
    values = json.loads(text)
    full = len(_STORED_ATTEMPT_FIELDS)
    if len(values) == full - 1:
        # Written before trace ids existed: the payload is still last.
        values.insert(_TRACE_AT, None)
    # Records from before the audit trail kept arguments are shorter still: None for the rest.
    values += [None] * (full - len(values))
    row = dict(zip(_STORED_ATTEMPT_FIELDS, values, strict=True))
    row["job_id"] = job_id
    return kit.attempt_record(row)


class FinishSubscriber:
    """A thread SUBSCRIBEd to the namespace's ``finished`` channel, waking a FinishHub's watches.

    ``connect`` returns a redis-py PubSub (it may open connections: it runs on this
    thread, never on the caller's). When the subscription starts or ends, every
    watch is woken: messages published while nobody listened are lost, and a watch
    that is no longer live has to poll. A lost connection is reopened with backoff.
    """

    def __init__(self, connect: Callable[[], Any], channel: str, hub: kit.FinishHub) -> None:
        self.connect = connect
        self.channel = channel
        self.hub = hub
        self.pid = os.getpid()
        self._listening = False
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def listening(self) -> bool:
        """True while this process receives the channel's messages."""
        return self._listening and self.pid == os.getpid()

    def start(self) -> None:
        """Start the thread (once)."""
        with self._lock:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(
                    target=self._main, name="conveyor-redis-finishes", daemon=True
                )
                self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; it notices within a second."""
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _set_listening(self, value: bool) -> None:
        self._listening = value
        self.hub.wake_all()

    def _main(self) -> None:
        delay = 0.1
        while not self._closed.is_set():
            pubsub: Any = None
            try:
                pubsub = self.connect()
                pubsub.subscribe(self.channel)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._set_listening(True)
                        delay = 0.1
                    elif message["type"] == "message":
                        self.hub.finished(message["data"].split(","))
            except (redis.RedisError, OSError) as exc:
                if not self._closed.is_set():
                    log.warning("Redis finish subscription lost (%s); result() polls meanwhile", exc)
            finally:
                if self._listening:
                    self._set_listening(False)
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
            self._closed.wait(delay)
            delay = min(delay * 2, 5.0)
