"""Worker "hosts" in network namespaces of their own, joined to this one by a veth pair.

Each host gets a namespace ``cvt<hex>`` and a veth pair in a private
10.231.<n>.0/24: ``.1`` on the root side (where the private database listens),
``.2`` inside the namespace (where the worker runs, via ``ip netns exec``).
Traffic never leaves the machine. ``cut()``/``restore()`` set the root-side end
down/up; ``impair()`` adds latency and loss with ``tc netem`` inside the
namespace. Everything created is deleted by ``remove()``.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess

import pytest


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def namespaces_unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2 (ip, tc) is not installed"
    probe = "cvtprobe" + secrets.token_hex(3)
    result = _ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"`ip netns add` failed: {result.stderr.strip()} (needs root or CAP_SYS_ADMIN)"
    _ip("netns", "del", probe, check=False)
    return None


class Host:
    """One network namespace with a veth link to the root namespace."""

    def __init__(self, subnet: int) -> None:
        reason = namespaces_unavailable()
        if reason is not None:
            pytest.skip(f"NETWORK FAULT SCENARIO NOT RUN: {reason}")
        tag = secrets.token_hex(3)
        self.name = f"cvt{tag}"
        self.outer = f"cvo{tag}"  # root side
        self.inner = f"cvi{tag}"  # namespace side
        self.server_address = f"10.231.{subnet}.1"
        self.address = f"10.231.{subnet}.2"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            _ip("link", "set", self.inner, "netns", self.name)
            _ip("addr", "add", f"{self.server_address}/24", "dev", self.outer)
            _ip("link", "set", self.outer, "up")
            self.run("ip", "addr", "add", f"{self.address}/24", "dev", self.inner)
            self.run("ip", "link", "set", self.inner, "up")
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    @property
    def prefix(self) -> tuple[str, ...]:
        """The command prefix that runs a program on this host."""
        return ("ip", "netns", "exec", self.name)

    def run(self, *cmd: str) -> None:
        subprocess.run([*self.prefix, *cmd], check=True, capture_output=True, timeout=30)

    def cut(self) -> None:
        """The link goes down: packets are dropped, connections hang (no reset)."""
        _ip("link", "set", self.outer, "down")

    def restore(self) -> None:
        _ip("link", "set", self.outer, "up")

    def impair(self, delay_ms: int, loss_percent: float) -> str | None:
        """Latency and loss on the host's side of the link (tc netem); why not, if the kernel lacks it."""
        result = subprocess.run(
            [
                *self.prefix,
                "tc",
                "qdisc",
                "replace",
                "dev",
                self.inner,
                "root",
                "netem",
                "delay",
                f"{delay_ms}ms",
                "loss",
                f"{loss_percent}%",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode == 0:
            return None
        return f"tc netem unavailable: {result.stderr.strip()} (kernel without sch_netem)"

    def remove(self) -> None:
        _ip("link", "del", self.outer, check=False)
        _ip("netns", "del", self.name, check=False)
