"""Private database servers the torture suite may kill, restart and reach over a namespace link.

Never the shared servers on 5432/6379: other tests use those. A private
PostgreSQL cluster (initdb + pg_ctl from /usr/lib/postgresql/*/bin, run as the
``postgres`` user when we are root) and a private redis-server (AOF, fsync
always), each in a temporary directory on a free port, bound to loopback and to
any extra address given (a veth address for the network-fault scenario).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(ready: object, timeout: float, what: str) -> None:
    assert callable(ready)
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} did not come up within {timeout:g}s"
        time.sleep(0.05)


class PrivateRedis:
    """A redis-server of the test's own, with ``appendonly yes`` and ``appendfsync always``.

    ``extra`` settings (``"--maxmemory-policy", "allkeys-lru"``...) come after these and win.
    """

    def __init__(
        self, directory: Path, bind: tuple[str, ...] = ("127.0.0.1",), extra: tuple[str, ...] = ()
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed: cannot start a private server")
        self.binary = binary
        self.directory = directory
        self.bind = bind
        self.extra = extra
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, prefix: str, host: str = "127.0.0.1") -> str:
        return f"redis://{host}:{self.port}/0?prefix={prefix}"

    def start(self) -> None:
        import redis

        cmd = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            *self.bind,
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--protected-mode",
            "no",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--logfile",
            str(self.directory / "redis.log"),
            *self.extra,
        ]
        self.proc = subprocess.Popen(cmd)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                return False

        _wait(up, 20, "private redis-server")
        client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF rewrite."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (trust auth, fsync on), restartable."""

    def __init__(self, listen: tuple[str, ...] = ("127.0.0.1",)) -> None:
        bindir = _pg_bin()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")
        self.bindir = bindir
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.directory = Path(tempfile.mkdtemp(prefix="conveyor-torture-pg-"))
        self.data = self.directory / "pgdata"
        self.listen = listen
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres").pw_name
            except KeyError:
                pytest.skip("running as root without a postgres user: cannot run a private cluster")

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        full = [*(["runuser", "-u", self.user, "--"] if self.user else []), *cmd]
        result = subprocess.run(full, capture_output=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"{cmd[0]} failed: {result.stderr.decode()[-2000:]}")
        return result

    def url(self, host: str = "127.0.0.1") -> str:
        return f"postgresql://postgres@{host}:{self.port}/postgres"

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N")
        with open(self.data / "pg_hba.conf", "a") as hba:
            for address in self.listen:  # the namespace hosts of a listen address's /24
                if address != "127.0.0.1":
                    hba.write(f"host all all {address.rsplit('.', 1)[0]}.0/24 trust\n")
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses={','.join(self.listen)} "
            "-c max_connections=60 -c shared_buffers=16MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "pg.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def restart(self, mode: str = "immediate") -> None:
        """``immediate``: every server process quits at once, crash recovery on start."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.start()

    def stop(self) -> None:
        if self.data.exists():
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False
            )
        shutil.rmtree(self.directory, ignore_errors=True)
