"""Redis and Valkey: every state change is one Lua script, run by SHA, on the server's clock.

The data layout, the cluster story and what a Redis crash can lose are in
``docs/redis.md``. In short: all keys of a namespace share the hash tag
``{prefix}``, so each script is atomic on a standalone server and on a Redis
Cluster alike; job records are hashes; waiting jobs sit in one sorted set per
(queue, priority) scored by due time; leases in a sorted set by expiry; one
sorted set per (queue, state) by creation time serves listings, counts and
purges. Idle workers block in BLPOP on a per-queue wake-up list that enqueue
pushes to, capped at the next due time.

URL: ``redis://[user:pass@]host:6379/0?prefix=conveyor`` (also ``rediss://``
and ``valkey://``). Conveyor's own options: ``prefix`` (the namespace, default
``conveyor``), ``cluster`` (``auto``/``yes``/``no``) and ``audit_max`` (how
many recent attempt records the newest-first audit index keeps); every other
query option goes to redis-py (``socket_timeout=``, ``ssl_cert_reqs=``...).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis

from ..errors import ConfigurationError, SchemaMismatch
from ..states import ALL_STATES, State
from . import flow, kit
from .base import (
    WORKER_LOST,
    ActionRecord,
    AttemptRecord,
    BulkDeletion,
    EnqueueResult,
    FinishWatch,
    Gauges,
    JobQuery,
    JobRecord,
    Lease,
    LeaseRenewal,
    NewAction,
    NewJob,
    Outcome,
    Page,
    ProgressUpdate,
    ReapResult,
    Stats,
    WorkerBeat,
    WorkerRecord,
)
from .flow import GroupUsage, QueueSettings, QueueUpdate, QueueUsage
from .redis_enqueue import enqueue_args, enqueue_results
from .redis_maintenance import RedisMaintenance
from .redis_observe import RedisObservability
from .redis_pickup import RedisPickup
from .redis_support import (
    Clients,
    FinishSubscriber,
    check_server,
    decode_attempt,
    decode_record,
    encode_attempt,
    log,
    parse_redis_url,
    translate_errors,
)

SCHEMA_VERSION = 1
#: Jobs per enqueue script call: bounds one call's arguments and run time.
ENQUEUE_CHUNK = 2000
#: Ids per script call in ``resubmit_many`` and ``delete_many``.
RESUBMIT_CHUNK = 500


def _num(value: float) -> str:
    """A float as exact text for Lua's tonumber (repr round-trips)."""
    return repr(float(value))


class RedisBackend(RedisPickup, RedisMaintenance, RedisObservability):
    """The Backend protocol on Redis 6.2+ or Valkey (see module docstring).

    Connections open on first use; a lost connection raises BackendUnavailable
    quickly (socket timeouts), reads and idempotent writes are retried with
    backoff first, and the worker retries the rest.
    """

    def __init__(self, url: str, *, key_retention: float = 86400.0) -> None:
        self.url = url
        self.options = parse_redis_url(url)
        parts = urlsplit(url)
        self.server = f"{parts.hostname}:{parts.port or 6379}"
        self.prefix = self.options.prefix
        #: Every key of this namespace starts with this; the braces make it one hash slot.
        self.base = "{" + self.prefix + "}:"
        self.key_retention = key_retention
        self._keys = [self.base]
        self._lock = threading.Lock()
        self._clients: Clients | None = None
        self._subscriber: FinishSubscriber | None = None
        #: Job.result waiters, woken by the finish subscriber (started by the first watch).
        self._finishes = kit.FinishHub(live=self._finishes_live, on_watch=self._start_subscriber)

    def __repr__(self) -> str:
        return f"<RedisBackend {self.server} prefix={self.prefix!r}>"

    # -- connections ------------------------------------------------------------
    @property
    def clients(self) -> Clients:
        """The connections, opened (and the server checked) on first use."""
        clients = self._clients
        if clients is None:
            with self._lock:
                if self._clients is None:
                    opened = Clients(self.options)
                    try:
                        self._check_schema(opened)
                        check_server(opened.retrying, self.server, self.prefix)
                    except BaseException:
                        opened.close()
                        raise
                    self._clients = opened
                clients = self._clients
        return clients

    def _check_schema(self, clients: Clients) -> None:
        meta = self.base + "meta"
        clients.retrying.hsetnx(meta, "schema", SCHEMA_VERSION)
        version = int(clients.retrying.hget(meta, "schema"))
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"namespace {self.prefix!r} on {self.server} has schema version {version}, newer "
                f"than this Conveyor knows ({SCHEMA_VERSION}); upgrade conveyor"
            )

    def _run(self, name: str, args: Sequence[Any], *, retry: bool = False) -> Any:
        """Run one script by SHA (redis-py reloads it after a NOSCRIPT, e.g. a server restart)."""
        clients = self.clients
        return clients.scripts[name](self._keys, args, client=clients.retrying if retry else clients.once)

    @translate_errors
    def migrate(self) -> None:
        """Record the schema version and load every script; idempotent."""
        clients = self.clients
        for script in clients.scripts.values():
            clients.retrying.script_load(script.script)

    def close(self) -> None:
        """Close the connections (they reopen on next use)."""
        with self._lock:
            clients, self._clients = self._clients, None
            subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            subscriber.close()
        if clients is not None:
            clients.close()

    @translate_errors
    def now(self) -> float:
        """The Redis server's clock (TIME), which every lease and due time uses."""
        seconds, micros = self._run("clock", (), retry=True)
        return int(seconds) + int(micros) / 1_000_000

    # -- producers ------------------------------------------------------------------
    @translate_errors
    def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """Store jobs atomically in one round trip (one script per 2,000 jobs, in MULTI/EXEC).

        Safe to repeat after a lost reply: a job id already stored is reported, not
        stored twice. ``connection=`` is refused: Redis has no transaction of the
        caller's to join.
        """
        if connection is not None:
            raise ConfigurationError(
                "transactional enqueue (connection=) needs PostgreSQL or SQLite: Redis has no "
                "transaction of yours to join; enqueue after your commit instead"
            )
        if not jobs:
            return []
        if len(jobs) <= ENQUEUE_CHUNK:
            return enqueue_results(jobs, self._run("enqueue", enqueue_args(jobs), retry=True))
        chunks = [jobs[i : i + ENQUEUE_CHUNK] for i in range(0, len(jobs), ENQUEUE_CHUNK)]
        replies = self._enqueue_chunks([enqueue_args(chunk) for chunk in chunks])
        return [
            r for chunk, reply in zip(chunks, replies, strict=True) for r in enqueue_results(chunk, reply)
        ]

    def _enqueue_chunks(self, chunks: list[list[Any]]) -> list[Any]:
        """Several enqueue scripts in one MULTI/EXEC: all chunks or none, one round trip; their replies."""
        clients = self.clients
        script = clients.scripts["enqueue"]
        client = clients.retrying
        if clients.cluster:
            # A cluster pipeline cannot be a transaction, but the namespace is one slot:
            # run the transaction on the node that owns it.
            client = client.get_redis_connection(client.get_node_from_key(self.base))
        pipe = client.pipeline(transaction=True)
        for chunk in chunks:
            script(self._keys, chunk, client=pipe)
        try:
            replies = pipe.execute()
        except redis.ResponseError as exc:
            if not clients.cluster or not ("MOVED" in str(exc) or "ASK" in str(exc)):
                raise
            # The slot is moving (a reshard): each chunk alone is atomic, and storing
            # a chunk twice is harmless (ids already stored are reported, not repeated).
            replies = [self._run("enqueue", chunk, retry=True) for chunk in chunks]
        return list(replies)

    # -- workers (claim, wait_for_jobs and wait_and_claim are in redis_pickup) -------------
    @translate_errors
    def extend_leases(self, leases: Sequence[Lease], lease_seconds: float) -> LeaseRenewal:
        """Renew every lease still held (same token), in one script."""
        if not leases:
            return LeaseRenewal(frozenset(), frozenset())
        args: list[Any] = [_num(lease_seconds)]
        for lease in leases:
            args += (lease.job_id, lease.lease_token)
        flat = self._run("extend", args, retry=True)  # renewing twice is harmless
        n_lost = int(flat[0])
        return LeaseRenewal(frozenset(flat[1 : 1 + n_lost]), frozenset(flat[1 + n_lost :]))

    @translate_errors
    def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes (fenced by lease token) and their audit records in one script."""
        if not outcomes:
            return []
        args: list[Any] = [max(0, round(self.key_retention * 1000)), self.options.audit_max]
        for o in outcomes:
            if o.kind not in kit.OUTCOME_KINDS:
                raise kit.unknown_outcome_kind(o.kind)
            nulls = (o.result is None) | (o.error is None) << 1 | (o.traceback is None) << 2
            meta = f"{o.job_id}|{o.lease_token}|{o.kind}|{_num(o.retry_delay)}|{nulls}"
            if meta.count("|") != 4:
                raise ValueError(f"job id and lease token may not contain '|' ({meta!r})")
            record = "" if o.started_at is None else encode_attempt(o)
            args += (meta, o.result or "", o.error or "", o.traceback or "", record)
        # Not retried by the client: a replay would report applied outcomes as lost.
        applied = [flag == 1 for flag in self._run("finish", args)]
        follow_ups = [job for o, ok in zip(outcomes, applied, strict=True) if ok for job in o.follow_ups]
        if follow_ups:
            self._store_follow_ups(follow_ups)
        return applied

    def _store_follow_ups(self, jobs: list[NewJob]) -> None:
        """Store the jobs that follow applied outcomes (on_complete callbacks).

        A second script call, retried here: the outcomes are already applied, so the
        caller must not see a failure. Enqueue is idempotent by job id and key, so a
        retry stores each job once. A process crash between the two calls loses the
        callback: the one step PostgreSQL and SQLite do in a single transaction.
        """
        for delay in (0.05, 0.2, 1.0, 5.0, None):
            try:
                self.enqueue_many(jobs)
                return
            except Exception as exc:  # noqa: BLE001 - logged; retried below
                if delay is None:
                    ids = ", ".join(job.id for job in jobs)
                    log.error("could not store follow-up job(s) %s: %s", ids, exc)
                    return
                time.sleep(delay)

    @translate_errors
    def reap_expired(self, limit: int = 500) -> ReapResult:
        """Requeue lapsed leases (the attempt counts); fail them when attempts are spent."""
        requeued, failed = self._run("reap", [limit, WORKER_LOST, self.options.audit_max], retry=True)
        return ReapResult(int(requeued), int(failed))

    # -- flow control --------------------------------------------------------------------
    @translate_errors
    def queue_update(self, update: QueueUpdate) -> QueueSettings:
        """Apply a checked change in one script (the queue becomes managed)."""
        args: list[Any] = [update.name]
        for name, value in update.changes:
            if name in ("rate_limit", "group_rate_limit"):
                prefix = name.removesuffix("_limit")
                args += (name, "" if value is None else value.text)
                args += (f"{prefix}_count", "" if value is None else value.count)
                args += (f"{prefix}_period", "" if value is None else _num(value.period))
            elif name == "paused":
                args += (name, "1" if value else "0")
            else:
                args += (name, "" if value is None else value)
        flat = self._run("queue_update", args)
        return _settings(update.name, flat)

    @translate_errors
    def queue_usage(self, names: Sequence[str] | None = None) -> list[QueueUsage]:
        """Managed queues against their limits, by name."""
        reply = self._run("queue_usage", [""] if names is None else list(names), retry=True)
        usage: list[QueueUsage] = []
        for i in range(0, len(reply), 5):
            name, settings, running, started, flat = reply[i : i + 5]
            groups = (GroupUsage(flat[j], int(flat[j + 1]), int(flat[j + 2])) for j in range(0, len(flat), 3))
            usage.append(
                QueueUsage(_settings(name, settings), int(running), int(started), flow.busiest(groups))
            )
        return usage

    # -- results -------------------------------------------------------------------------
    def watch_finishes(self, job_ids: Sequence[str], wake: Callable[[], None]) -> FinishWatch:
        """Woken by the finish scripts' PUBLISH; live once the subscriber thread is subscribed.

        The first watch starts that thread without waiting for it: until it is
        subscribed the watch is not live (its waiter polls), and it is woken when it is.
        """
        return self._finishes.watch(job_ids, wake)

    def _finishes_live(self) -> bool:
        subscriber = self._subscriber
        return subscriber is not None and subscriber.listening

    def _start_subscriber(self) -> None:
        with self._lock:
            subscriber = self._subscriber
            if subscriber is None or subscriber.pid != os.getpid():
                subscriber = self._subscriber = FinishSubscriber(
                    lambda: self.clients.blocking.pubsub(), self.base + "finished", self._finishes
                )
        subscriber.start()

    # -- admin ---------------------------------------------------------------------------
    @translate_errors
    def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempt records, read atomically."""
        flat, attempts = self._run("get", ["1", job_id], retry=True)
        return decode_record(job_id, flat, attempts)

    @staticmethod
    def _range(query: JobQuery) -> tuple[str, str]:
        low = "-inf" if query.created_after is None else _num(query.created_after)
        high = "+inf" if query.created_before is None else "(" + _num(query.created_before)
        return low, high

    def _list(self, mode: str, status: str | None, query: JobQuery) -> Any:
        low, high = self._range(query)
        args = [
            mode,
            status or "",
            query.queue or "",
            low,
            high,
            query.offset,
            query.limit,
            query.task or "",
            query.error or "",
            query.group or "",
        ]
        return self._run("list", args, retry=True)

    @translate_errors
    def list_jobs(self, query: JobQuery) -> Page:
        """Jobs matching ``query``, newest first (created_at desc, id desc), and the total.

        Status, queue and created range use indexes (a status alone merges the queues'
        indexes); a task filter reads the jobs of the range (see docs/redis.md).
        """
        reply = self._list("page", query.status, query)
        items = [decode_record(reply[i], reply[i + 1]) for i in range(1, len(reply), 2)]
        return Page([r for r in items if r is not None], int(reply[0]))

    @translate_errors
    def stats(self) -> Stats:
        """Counts by state and queue (index cardinalities) and the oldest due pending job's age."""
        now, rows = self._run("stats", ALL_STATES, retry=True)
        width = 1 + len(ALL_STATES)
        groups = [
            (rows[i], state, int(n))
            for i in range(1, len(rows), width)
            for state, n in zip(ALL_STATES, rows[i + 1 : i + width], strict=True)
        ]
        oldest = rows[0]
        return kit.stats_from_counts(groups, None if oldest is None else float(now) - float(oldest))

    def _resubmit(self, ids: Sequence[str], payload: str | None) -> list[str]:
        args = ["0" if payload is None else "1", payload or "", *ids]
        codes: list[str] = self._run("resubmit", args)
        return codes

    @translate_errors
    def resubmit(self, job_id: str, payload: str | None = None) -> JobRecord:
        """A failed or cancelled job back to pending with a fresh attempt budget."""
        (code,) = self._resubmit([job_id], payload)
        if code != "ok":
            raise kit.job_not_found(job_id) if code == "missing" else kit.cannot_resubmit(job_id, code)
        return self._reread(job_id, "resubmitted")

    @translate_errors
    def resubmit_many(self, query: JobQuery, payload: str | None = None) -> list[str]:
        """Resubmit every failed/cancelled job matching ``query``, oldest first; their ids."""
        states = [s for s in ("failed", "cancelled") if query.status in (None, s)]
        found: list[tuple[float, str]] = []
        for state in states:
            flat = self._list("ids", state, query)
            found += ((float(flat[i + 1]), flat[i]) for i in range(0, len(flat), 2))
        ids = [job_id for _, job_id in sorted(found)]
        done: list[str] = []
        for start in range(0, len(ids), RESUBMIT_CHUNK):
            # Each chunk re-checks states atomically.
            chunk = ids[start : start + RESUBMIT_CHUNK]
            codes = self._resubmit(chunk, payload)
            done += (job_id for job_id, code in zip(chunk, codes, strict=True) if code == "ok")
        return done

    @translate_errors
    def delete_many(self, query: JobQuery) -> BulkDeletion:
        """Delete every matching job but the processing ones: listed first, then deleted in chunks.

        Each chunk re-checks, atomically, that a job is still in the state it was listed for
        and not running; a job that changed meanwhile is left alone and not counted.
        """
        flat = self._list("ids", query.status, query)
        ids = sorted(flat[i] for i in range(0, len(flat), 2))
        deleted: list[str] = []
        skipped = 0
        for start in range(0, len(ids), RESUBMIT_CHUNK):
            reply = self._run("delete_many", [query.status or "", *ids[start : start + RESUBMIT_CHUNK]])
            skipped += int(reply[0])
            deleted += reply[1:]
        return BulkDeletion(deleted, skipped)

    @translate_errors
    def cancel(self, job_id: str) -> JobRecord:
        """Waiting: cancelled now. Processing: flagged; its worker stops it."""
        code = self._run("cancel", [job_id, kit.CANCELLED_BEFORE_RUN])
        if code not in ("done", "flagged"):
            raise kit.job_not_found(job_id) if code == "missing" else kit.cannot_cancel(job_id, code)
        return self._reread(job_id, "cancelled")

    def _reread(self, job_id: str, doing: str) -> JobRecord:
        """The job after an admin operation changed it (JobNotFound if deleted meanwhile)."""
        record = self.get(job_id)
        if record is None:
            raise kit.job_vanished(job_id, doing)
        return record

    @translate_errors
    def delete(self, job_id: str) -> None:
        """Delete a job (not while processing) with its attempt records."""
        code = self._run("delete", [job_id])
        if code == "missing":
            raise kit.job_not_found(job_id)
        if code == "processing":
            raise kit.cannot_delete(job_id)

    @translate_errors
    def purge(self, states: Sequence[State], before: float, batch_size: int = 1000) -> int:
        """Delete up to ``batch_size`` finished jobs in ``states`` that finished before ``before``."""
        wanted = [s for s in dict.fromkeys(states) if s in ("completed", "failed", "cancelled")]
        if not wanted or batch_size <= 0:
            return 0
        return int(self._run("purge", [_num(before), batch_size, *wanted]))

    @translate_errors
    def audits(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[AttemptRecord]:
        """Attempt records, newest first, optionally for one job."""
        if limit <= 0:
            return []
        if job_id is not None:
            texts = self.clients.retrying.lrange(f"{self.base}a:{job_id}", -(offset + limit), -(offset + 1))
            return [decode_attempt(job_id, text) for text in reversed(texts)]
        flat = self._run("audits", [offset, limit], retry=True)
        return [decode_attempt(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]

    # -- the operators' action trail ---------------------------------------------------
    @translate_errors
    def record_actions(self, actions: Sequence[NewAction]) -> None:
        """Store actions and their job links in one script call."""
        args: list[Any] = []
        for a in actions:
            job_id = kit.action_job_id(a.job_ids) or ""
            args += (a.actor, a.role or "", a.action, job_id, a.count, a.detail or "", len(a.job_ids))
            args += a.job_ids
        if args:
            self._run("actions_record", args)

    @translate_errors
    def list_actions(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> list[ActionRecord]:
        """Recorded actions, newest first, optionally only those naming ``job_id``."""
        flat = self._run("actions_list", [job_id or "", offset, limit], retry=True)
        width = len(kit.ACTION_FIELDS)
        return [
            kit.action_record(kit.by_position(kit.ACTION_FIELDS, flat[i : i + width]))
            for i in range(0, len(flat), width)
        ]

    # -- observability -------------------------------------------------------------
    @translate_errors
    def workers_beat(self, beats: Sequence[WorkerBeat], ttl_seconds: float) -> None:
        """Register or renew workers until ``ttl_seconds`` from the server's now (one script)."""
        if beats:
            args: list[Any] = [_num(ttl_seconds)]
            for beat in beats:
                args += (beat.id, kit.worker_info(beat))
            self._run("workers_beat", args, retry=True)

    @translate_errors
    def workers_remove(self, worker_ids: Sequence[str]) -> None:
        """Take workers off the list."""
        if worker_ids:
            self._run("workers_remove", list(worker_ids), retry=True)

    @translate_errors
    def workers_live(self) -> list[WorkerRecord]:
        """Workers whose beat has not expired, oldest first."""
        flat = self._run("workers_live", [], retry=True)
        records = [kit.worker_record(flat[i + 1], float(flat[i + 2])) for i in range(0, len(flat), 3)]
        return sorted(records, key=lambda r: (r.beat.started_at, r.beat.id))

    @translate_errors
    def queue_gauges(self) -> Gauges:
        """Counts by queue and state (index cardinalities) and each queue's oldest due pending age."""
        flat = self._run("gauges", ALL_STATES, retry=True)
        now = float(flat[0])
        width = 2 + len(ALL_STATES)
        groups: list[tuple[str, str, int]] = []
        oldest: list[tuple[str, float | None]] = []
        for i in range(1, len(flat), width):
            queue, due = flat[i], flat[i + 1]
            groups += [(queue, s, int(n)) for s, n in zip(ALL_STATES, flat[i + 2 : i + width], strict=True)]
            oldest.append((queue, None if due is None else now - float(due)))
        return kit.gauges_from(groups, oldest)

    @translate_errors
    def jobs_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        """Store progress on the jobs whose lease each update still holds (one script)."""
        if not updates:
            return
        args: list[Any] = []
        for u in updates:
            fraction = "" if u.fraction is None else repr(float(u.fraction))
            args += (u.job_id, u.lease_token, fraction, u.message or "", 0 if u.message is None else 1)
        self._run("progress", args, retry=True)


__all__ = ["RedisBackend"]


def _settings(name: str, flat: list[str]) -> QueueSettings:
    """QueueSettings from a flat HGETALL of a settings hash."""
    stored = dict(zip(flat[::2], flat[1::2], strict=True))
    row = {field: stored.get(field) for field in flow.SETTING_FIELDS}
    return flow.settings_from_row({**row, "name": name})
