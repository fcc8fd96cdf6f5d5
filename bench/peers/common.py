"""What every benchmark task does, identically on every system: record that it ran.

Standard library only: this module is imported by Conveyor's workers (main venv)
and by every peer's workers (the peers venv).

A task records its completion in a file of its own process in the session's
output directory (``BENCH_OUT``), so the harness needs nothing from the system
under test, and every system pays the same per job:

- ``count-<pid>``: a shared memory map of 8-byte counters, one per thread (so no
  lock and no system call: a no-op job costs well under a microsecond to count,
  where an ``os.write`` per job cost up to a fifth of a fast worker's time, most of
  it taking the GIL back after the call); the harness sums them;
- ``ids-<pid>``: an 8-byte record (``%07d\\n``) per finished numbered job (the retry workload);
- ``lat-<pid>``: one line per pickup-latency probe, the milliseconds from enqueue to start;
- ``span-<pid>``: start and end times of each I/O job, to check how many ran at once;
- ``fail-<n>``: a marker created atomically (``O_EXCL``) by the first attempt of a flaky job.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import struct
import threading
import time
from pathlib import Path

#: Bytes per record in an ``ids-*`` file.
ID_RECORD = 8
#: The simulated I/O of the I/O workload, in seconds.
IO_SECONDS = 0.005
#: Every fifth numbered job fails its first attempt (20%).
FLAKY_EVERY = 5


class FlakyFailure(Exception):
    """The planned first-attempt failure of a flaky job."""


class _Sink:
    """Per-process append-only files, reopened after a fork."""

    def __init__(self) -> None:
        self._pid = -1
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def out(self) -> str:
        """The session's output directory."""
        return os.environ["BENCH_OUT"]

    def fd(self, kind: str) -> int:
        """The descriptor of this process's ``kind`` file."""
        pid = os.getpid()
        if pid != self._pid:
            with self._lock:
                if pid != self._pid:
                    self._fds = {}
                    self._pid = pid
        fd = self._fds.get(kind)
        if fd is None:
            with self._lock:
                fd = self._fds.get(kind)
                if fd is None:
                    path = os.path.join(self.out, f"{kind}-{pid}")
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                    self._fds[kind] = fd
        return fd

    def write(self, kind: str, data: bytes) -> None:
        """Append ``data`` to this process's ``kind`` file."""
        os.write(self.fd(kind), data)


SINK = _Sink()

#: Counter slots per process (one per thread that completes jobs).
SLOTS = 1024
_COUNTER = struct.Struct("<Q")


class _Counters:
    """Per-process, per-thread completion counters in a shared memory map (``count-<pid>``)."""

    def __init__(self) -> None:
        self._pid = -1
        self._map: mmap.mmap | None = None
        self._next = 0
        self._local = threading.local()
        self._lock = threading.Lock()

    def _open(self, pid: int) -> None:
        path = os.path.join(SINK.out, f"count-{pid}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, SLOTS * _COUNTER.size)
            self._map = mmap.mmap(fd, SLOTS * _COUNTER.size)
        finally:
            os.close(fd)
        self._next = 0
        self._pid = pid

    def incr(self) -> None:
        """Add one to this thread's counter."""
        pid = os.getpid()
        slot = getattr(self._local, "slot", None)
        if slot is None or slot[0] != pid:
            with self._lock:
                if self._pid != pid:
                    self._open(pid)
                slot = self._local.slot = (pid, self._next * _COUNTER.size)
                self._next = (self._next + 1) % SLOTS
        buffer = self._map
        assert buffer is not None
        offset = slot[1]
        _COUNTER.pack_into(buffer, offset, _COUNTER.unpack_from(buffer, offset)[0] + 1)


COUNTERS = _Counters()


def noop() -> None:
    """The no-op job: record the completion and nothing else."""
    COUNTERS.incr()


def pickup(sent_at: float) -> None:
    """The latency probe: record milliseconds from enqueue (``sent_at``, ``time.time()``) to now."""
    SINK.write("lat", b"%.3f\n" % ((time.time() - sent_at) * 1000.0))


def io_sync() -> None:
    """Five milliseconds of simulated blocking I/O; the span is recorded to check the slot budget."""
    started = time.time()
    time.sleep(IO_SECONDS)
    SINK.write("span", b"%.6f %.6f\n" % (started, time.time()))
    COUNTERS.incr()


async def io_async() -> None:
    """Five milliseconds of simulated asynchronous I/O; the span is recorded to check the slot budget."""
    started = time.time()
    await asyncio.sleep(IO_SECONDS)
    SINK.write("span", b"%.6f %.6f\n" % (started, time.time()))
    COUNTERS.incr()


def first_attempt_fails(n: int) -> bool:
    """True exactly once for every fifth ``n``: the caller must then fail this attempt."""
    if n % FLAKY_EVERY:
        return False
    try:
        os.close(os.open(os.path.join(SINK.out, f"fail-{n}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


def flaky(n: int) -> None:
    """Job ``n`` of the retry workload: every fifth fails its first attempt, then succeeds."""
    if first_attempt_fails(n):
        raise FlakyFailure(f"job {n}: planned first-attempt failure")
    SINK.write("ids", b"%07d\n" % n)


def record_id(n: int) -> None:
    """Record that numbered job ``n`` completed (for systems whose retry signal is their own exception)."""
    SINK.write("ids", b"%07d\n" % n)


class Counts:
    """Harness side: what the tasks of a session recorded so far."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)

    def _sizes(self, prefix: str) -> dict[str, int]:
        sizes: dict[str, int] = {}
        with os.scandir(self.out) as entries:
            for entry in entries:
                if entry.name.startswith(prefix):
                    sizes[entry.name] = entry.stat().st_size
        return sizes

    def done(self) -> tuple[int, int]:
        """Completed no-op/I/O jobs, and how many processes have completed at least one."""
        total = active = 0
        for name in self._sizes("count-"):
            data = (self.out / name).read_bytes()
            n = sum(struct.unpack(f"<{len(data) // 8}Q", data[: len(data) - len(data) % 8]))
            total += n
            active += n > 0
        return total, active

    def ids(self) -> tuple[int, int]:
        """Distinct numbered jobs completed, and how many processes have completed at least one."""
        sizes = self._sizes("ids-")
        return self.unique_ids()[0], sum(1 for s in sizes.values() if s)

    def unique_ids(self) -> tuple[int, int]:
        """Distinct numbered jobs completed, and the total completions (duplicates show as the difference)."""
        seen: set[bytes] = set()
        total = 0
        for name in self._sizes("ids-"):
            data = (self.out / name).read_bytes()
            for start in range(0, len(data) - len(data) % ID_RECORD, ID_RECORD):
                seen.add(data[start : start + ID_RECORD])
                total += 1
        return len(seen), total

    def latencies(self) -> list[float]:
        """Every pickup latency recorded, in milliseconds."""
        values: list[float] = []
        for name in self._sizes("lat-"):
            values += [float(line) for line in (self.out / name).read_text().split()]
        return values

    def max_in_flight(self) -> int:
        """The most I/O jobs that were sleeping at the same instant, from their recorded spans."""
        events: list[tuple[float, int]] = []
        for name in self._sizes("span-"):
            for line in (self.out / name).read_text().splitlines():
                start, end = line.split()
                events += [(float(start), 1), (float(end), -1)]
        events.sort()  # at equal times the end (-1) sorts first: touching spans do not overlap
        running = peak = 0
        for _, step in events:
            running += step
            peak = max(peak, running)
        return peak

    def failed_first(self) -> int:
        """How many planned first-attempt failures happened."""
        return len(self._sizes("fail-"))
