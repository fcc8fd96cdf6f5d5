"""Flow control on SQLite: the rules of :mod:`conveyor.backends.flow` inside the claim's transaction.

Every function takes the connection of an open ``BEGIN IMMEDIATE`` transaction (SQLite
serialises writers), so counting the slots and taking them is one atomic step across
every process on the machine. The queries are the ``flow`` blocks of ``sqlite.sql``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from . import flow, sqlfile
from .flow import GroupUsage, QueueSettings, QueueUpdate, QueueUsage

SQL = sqlfile.load("sqlite.sql")


def managed(conn: sqlite3.Connection, queues: Sequence[str]) -> dict[str, QueueSettings]:
    """The settings of those ``queues`` that are managed (have a settings row)."""
    rows = conn.execute(SQL["queue_settings"], {"names": json.dumps(list(queues))})
    return {row["name"]: flow.settings_from_row(row) for row in rows}


def rank(conn: sqlite3.Connection, queue: str, group: str) -> int:
    """The fair rank of a new job of ``group`` (its queue becomes managed)."""
    conn.execute(SQL["ensure_queue"], {"queue": queue})
    return int(conn.execute(SQL["group_rank"], {"queue": queue, "group_key": group}).fetchone()[0])


def pick(
    conn: sqlite3.Connection, settings: QueueSettings, limit: int, now: float
) -> list[tuple[int, float, str]]:
    """Claim-order keys ``(-priority, run_at, id)`` of the jobs a claim may take from a managed queue."""
    queue = settings.name
    running = conn.execute(SQL["queue_running"], {"queue": queue}).fetchone()[0]
    started = 0
    if settings.rate_limit is not None:
        since = now - settings.rate_limit.period
        started = conn.execute(SQL["queue_started"], {"queue": queue, "since": since}).fetchone()[0]
    room = flow.queue_room(settings, running, started, limit)
    if room <= 0:
        return []
    rows = conn.execute(
        SQL["flow_candidates"], {"queue": queue, "now": now, "limit": flow.scan_size(room)}
    ).fetchall()
    rooms: dict[str, int | None] = {}
    if flow.has_group_limits(settings):
        groups = json.dumps(sorted({r["group_key"] for r in rows if r["group_key"] is not None}))
        params = {"queue": queue, "groups": groups}
        busy = dict(conn.execute(SQL["groups_running"], params).fetchall())
        recent: dict[str, int] = {}
        if settings.group_rate_limit is not None:
            since = now - settings.group_rate_limit.period
            recent = dict(conn.execute(SQL["groups_started"], {**params, "since": since}).fetchall())
        for group in json.loads(groups):
            rooms[group] = flow.group_room(settings, busy.get(group, 0), recent.get(group, 0))
    chosen = set(flow.pick(((r["id"], r["group_key"]) for r in rows), room, rooms))
    return [(-r["priority"], r["run_at"], r["id"]) for r in rows if r["id"] in chosen]


def record_claims(
    conn: sqlite3.Connection, settings: dict[str, QueueSettings], rows: Iterable[Any], now: float
) -> None:
    """After a claim: advance each managed queue's clock, record starts where rates apply, prune."""
    top: dict[str, int] = {}
    starts: list[dict[str, Any]] = []
    for row in rows:
        queue_settings = settings.get(row["queue"])
        if queue_settings is None:
            continue
        top[row["queue"]] = max(top.get(row["queue"], 0), row["fair_rank"])
        if queue_settings.rated:
            starts.append({"queue": row["queue"], "group_key": row["group_key"], "now": now})
    for queue, highest in top.items():
        conn.execute(SQL["advance_clock"], {"queue": queue, "rank": highest})
        if settings[queue].rated:
            conn.execute(
                SQL["prune_starts"], {"queue": queue, "horizon": now - settings[queue].longest_window}
            )
    if starts:
        conn.executemany(SQL["record_start"], starts)


def update(conn: sqlite3.Connection, change: QueueUpdate) -> QueueSettings:
    """Apply a checked change to a queue's settings row (created if missing)."""
    current = managed(conn, [change.name]).get(change.name)
    settings = change.applied_to(current)
    conn.execute(SQL["save_queue"], settings.stored())
    return settings


def usage(conn: sqlite3.Connection, names: Sequence[str] | None, now: float) -> list[QueueUsage]:
    """Managed queues against their limits: processing, starts in the rate window, busiest groups."""
    if names is None:
        rows = conn.execute(SQL["all_queue_settings"]).fetchall()
        found = [flow.settings_from_row(r) for r in rows]
    else:
        found = sorted(managed(conn, names).values(), key=lambda s: s.name)
    result: list[QueueUsage] = []
    for settings in found:
        queue = settings.name
        running = conn.execute(SQL["queue_running"], {"queue": queue}).fetchone()[0]
        started = 0
        if settings.rate_limit is not None:
            since = now - settings.rate_limit.period
            started = conn.execute(SQL["queue_started"], {"queue": queue, "since": since}).fetchone()[0]
        top = conn.execute(SQL["busiest_groups"], {"queue": queue, "limit": flow.BUSIEST_GROUPS})
        groups = tuple(GroupUsage(r[0], int(r[1]), int(r[2])) for r in top)
        result.append(QueueUsage(settings, running, started, groups))
    return result
