"""LISTEN/NOTIFY wake-ups for idle workers, on one dedicated connection per backend.

Every statement that makes a job due now (enqueue, release, an immediate retry, a
requeue by the reaper, a resubmit) sends ``pg_notify(channel, queue)``; PostgreSQL
delivers it when that transaction commits. A thread owns the listening connection,
counts notifications per queue and wakes the waiters serving that queue. If the
connection drops, the thread reconnects with backoff and wakes every waiter once
it listens again (notifications sent meanwhile are lost, so everyone looks again);
while it is down, waiters fall back to polling.

:class:`FinishListener` is the same machinery on the finish channel: it hands the
job ids of each notification to a :class:`~conveyor.backends.kit.FinishHub`, which
wakes the ``Job.result`` calls waiting on them.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import LiteralString

import psycopg
from psycopg import sql

from .kit import FinishHub

log = logging.getLogger("conveyor.postgres")

#: A snapshot of the listener's counters: (epoch, per-queue notification counts).
Snapshot = tuple[int, tuple[int, ...]]


class Listener:
    """Owns the LISTEN connection and turns notifications into wake-ups."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self._cond = threading.Condition()
        self._counts: dict[str, int] = {}
        #: Bumped whenever the listener (re)starts listening or stops: waiters look again.
        self._epoch = 0
        self._listening = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        self.notifications = 0

    # -- state seen by waiters ------------------------------------------------------
    @property
    def listening(self) -> bool:
        """True while notifications are being received."""
        return self._listening

    def start(self) -> None:
        """Start the listening thread (once)."""
        with self._cond:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._main, name="conveyor-pg-listener", daemon=True)
            self._thread.start()

    def wait_listening(self, timeout: float) -> bool:
        """Block until the listener listens, up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._listening and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self._listening

    def snapshot(self, queues: Sequence[str]) -> Snapshot:
        """The counters a later ``wait`` compares against."""
        with self._cond:
            return self._epoch, tuple(self._counts.get(q, 0) for q in queues)

    def changed(self, queues: Sequence[str], since: Snapshot) -> bool:
        """True if a notification for ``queues`` (or a reconnect) came after ``since``."""
        with self._cond:
            return self._changed_locked(queues, since)

    def _changed_locked(self, queues: Sequence[str], since: Snapshot) -> bool:
        epoch, counts = since
        if self._epoch != epoch or self._closed:
            return True
        return any(self._counts.get(q, 0) != n for q, n in zip(queues, counts, strict=True))

    def wait(self, queues: Sequence[str], since: Snapshot, timeout: float) -> bool:
        """Wait until ``queues`` were notified after ``since``, or ``timeout``; True if woken."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._changed_locked(queues, since):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # -- life cycle -------------------------------------------------------------------
    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and close its connection."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        with suppress(OSError):
            os.write(self._wake_w, b"x")
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for fd in (self._wake_r, self._wake_w):
            with suppress(OSError):
                os.close(fd)

    def _set_listening(self, value: bool) -> None:
        with self._cond:
            self._listening = value
            self._epoch += 1
            self._cond.notify_all()

    def _main(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    # Notifications psycopg reads while running a statement on this
                    # connection go to the handler; the ones we read ourselves, to _drain.
                    conn.add_notify_handler(lambda note: self._count([note.payload]))
                    self._before_listen(conn)
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._set_listening(True)
                    delay = 0.1
                    self._receive(conn)
            except psycopg.Error as exc:
                if self._closed:
                    break
                log.warning(
                    "LISTEN connection lost (%s); workers poll meanwhile; reconnecting in %.1fs",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    delay,
                )
            finally:
                if self._listening:
                    self._set_listening(False)
            self._sleep(delay)
            delay = min(delay * 2, 5.0)

    def _before_listen(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """What a listener does on a new connection before it LISTENs (nothing here)."""

    def _sleep(self, seconds: float) -> None:
        with suppress(OSError, ValueError):
            select.select([self._wake_r], [], [], seconds)

    def _receive(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Dispatch notifications until the connection breaks or the listener closes."""
        pgconn = conn.pgconn
        fd = conn.fileno()
        while not self._closed:
            self._drain(pgconn)
            readable, _, _ = select.select([fd, self._wake_r], [], [], 30.0)
            if self._wake_r in readable or self._closed:
                return
            if fd in readable:
                pgconn.consume_input()  # raises OperationalError once the server is gone
                if pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("LISTEN connection is broken")
            else:
                conn.execute("SELECT 1")  # quiet for a while: make sure the peer is still there

    def _drain(self, pgconn: psycopg.pq.abc.PGconn) -> None:
        queues: list[str] = []
        while (note := pgconn.notifies()) is not None:
            queues.append(note.extra.decode("utf-8", "replace"))
        if queues:
            self._count(queues)

    def _count(self, queues: list[str]) -> None:
        with self._cond:
            for queue in queues:
                self._counts[queue] = self._counts.get(queue, 0) + 1
            self.notifications += len(queues)
            self._cond.notify_all()


class FinishListener(Listener):
    """LISTENs on the finish channel and wakes the hub's watches of the ids each notice carries.

    Whenever it starts or stops listening it wakes every watch: notices sent while it
    was not listening are lost, and a watch that is no longer live must start polling.
    """

    def __init__(self, conninfo: str, channel: str, hub: FinishHub, lock: LiteralString) -> None:
        super().__init__(conninfo, channel)
        self.hub = hub
        self.lock = lock

    def _before_listen(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        # The finish statement notifies only while a session holds this lock (postgres.sql).
        conn.execute(self.lock)

    def _count(self, queues: list[str]) -> None:
        # Here each payload is a comma-separated list of job ids (or "*": some job finished).
        self.notifications += len(queues)
        if "*" in queues:
            self.hub.wake_all()
        self.hub.finished(job_id for payload in queues for job_id in payload.split(","))

    def _set_listening(self, value: bool) -> None:
        super()._set_listening(value)
        self.hub.wake_all()
