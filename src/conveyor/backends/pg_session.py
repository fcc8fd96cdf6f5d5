"""PostgreSQL sessions: the settings of every pooled connection, and telling a dead one apart."""

from __future__ import annotations

import select
from typing import Any

import psycopg

from ..errors import ConfigurationError

Conn = psycopg.Connection[Any]


def configure_session(conn: Conn) -> None:
    """Session settings of every pooled connection.

    Generic plans: our statements have fixed shapes, so each is planned once per connection
    instead of at every execution (left to itself PostgreSQL re-plans the claim every time,
    which costs as much as running it). Admin listings ask for custom plans per transaction.
    No JIT: a generic plan cannot know the LIMIT, its cost estimate crosses jit_above_cost on
    a big table, and compiling then takes hundreds of milliseconds for a sub-millisecond claim.
    """
    conn.execute(
        "SELECT set_config('plan_cache_mode', 'force_generic_plan', false), set_config('jit', 'off', false)",
        prepare=False,
    )


def is_stale(conn: Conn) -> bool:
    """True for a pooled connection the server has closed (or messaged) while it sat idle.

    An idle connection has nothing to read unless the server went away (a restart,
    ``pg_terminate_backend``): one non-blocking ``select`` per checkout spots that, so the
    statement goes to a live connection instead of failing on a dead one. (The pool's own
    ``check`` hook backs off for a second or more per failed check, far too slow after a
    restart that killed every idle connection at once.)
    """
    if conn.closed or conn.broken:
        return True
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def is_connection_failure(exc: psycopg.Error) -> bool:
    """Connection-level failures (the server is gone), as opposed to errors of a statement."""
    state = exc.sqlstate
    return state is None or state.startswith("08") or state.startswith("57P")


def check_caller_transaction(
    connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], opener: str
) -> None:
    """Refuse a caller's connection whose jobs would not be part of an open transaction.

    ``opener`` is the statement that opens one (``with conn.transaction():`` or its async
    form), named in the message so the fix reads as the caller would write it.
    """
    status = connection.info.transaction_status
    if status == psycopg.pq.TransactionStatus.INERROR:
        raise ConfigurationError("connection= is in a failed transaction; roll it back first")
    if status == psycopg.pq.TransactionStatus.IDLE and connection.autocommit:
        raise ConfigurationError(
            "connection= is in autocommit mode outside a transaction, so the jobs would not be "
            f"part of one: enqueue inside `{opener}`"
        )
