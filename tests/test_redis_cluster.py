"""A real 3-node Redis Cluster on loopback: each namespace is one hash slot, and everything works.

The test starts three ``redis-server --cluster-enabled yes`` processes on free
ports, joins them with ``redis-cli --cluster create``, and runs namespaces
whose slots live on different nodes through the whole life cycle with a real
Worker: the cluster is detected from the URL, every script runs on the node
that owns the namespace's slot, and the structural invariants hold.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

import conveyor
from conveyor.backends.redis import RedisBackend
from redis_invariants import check_redis_invariants

redis = pytest.importorskip("redis")
from redis.cluster import RedisCluster  # noqa: E402


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        # Cluster nodes also listen on port + 10000 (the bus): keep both free.
        return [s.getsockname()[1] for s in sockets if s.getsockname()[1] < 55535]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Three cluster nodes with all slots assigned; yields their ports."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server/redis-cli not installed: cannot start a cluster")
    ports = _free_ports(6)[:3]
    if len(ports) < 3:
        pytest.skip("no three free loopback ports below 55535 for cluster nodes and their buses")
    procs = []
    base = tmp_path_factory.mktemp("cluster")
    try:
        for port in ports:
            directory = base / str(port)
            directory.mkdir()
            cmd = [
                server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
                "--logfile", str(directory / "redis.log"),
            ]  # fmt: skip
            procs.append(subprocess.Popen(cmd))
        for port in ports:
            _wait_for_ping(port)
        nodes = [f"127.0.0.1:{p}" for p in ports]
        create = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if create.returncode != 0:
            pytest.skip(f"redis-cli --cluster create failed: {create.stdout[-500:]} {create.stderr[-500:]}")
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(p) for p in ports):
            assert time.monotonic() < deadline, "cluster did not reach cluster_state:ok"
            time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def _wait_for_ping(port: int) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 15
    while True:
        try:
            if client.ping():
                client.close()
                return
        except redis.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"node {port} did not start"
        time.sleep(0.05)


def _cluster_ok(port: int) -> bool:
    client = redis.Redis(port=port, decode_responses=True)
    try:
        return bool(client.cluster("info").get("cluster_state") == "ok")
    finally:
        client.close()


def _namespaces_on_every_node(ports: list[int]) -> dict[str, str]:
    """One prefix per node: {prefix: node "host:port"}."""
    rc = RedisCluster(host="127.0.0.1", port=ports[0], decode_responses=True)
    found: dict[str, str] = {}
    try:
        for i in range(1000):
            prefix = f"tcl{i}"
            node = rc.get_node_from_key("{" + prefix + "}:x")
            if node.name not in found.values():
                found[prefix] = node.name
            if len(found) == len(ports):
                break
    finally:
        rc.close()
    return found


def test_namespaces_on_every_node_run_the_whole_life_cycle(cluster: list[int]) -> None:
    namespaces = _namespaces_on_every_node(cluster)
    assert len(namespaces) == 3, namespaces
    for prefix, node in namespaces.items():
        # Any node will do as the entry point: the client follows the slot map.
        url = f"redis://127.0.0.1:{cluster[0]}/0?prefix={prefix}"
        app = conveyor.App(url, lease=2.0, reaper_interval=0.2)
        assert isinstance(app.backend, RedisBackend) and app.backend.clients.cluster

        @app.task(max_attempts=2)
        def echo(n: int) -> int:
            if n % 50 == 7:
                raise conveyor.Permanent(f"bad {n}")
            return n

        items = [{"task": "echo", "args": [i], "key": f"k{i % 120}"} for i in range(400)]
        jobs = app.enqueue_many(items)
        assert len({j.id for j in jobs}) == 120, "keys deduplicate on a cluster too"
        app.enqueue_many([{"task": "echo", "args": [1000 + i]} for i in range(4100)])  # 3 chunks
        delayed = echo.options(delay=0.3).enqueue(5000)
        worker = conveyor.Worker(app, concurrency=5)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            assert delayed.result(timeout=30) == 5000
            deadline = time.monotonic() + 60
            while app.stats()["counts"]["pending"] + app.stats()["counts"]["processing"] > 0:
                assert time.monotonic() < deadline, app.stats()
                time.sleep(0.05)
        finally:
            worker.stop()
            thread.join(30)
        counts = app.stats()["counts"]
        assert counts["failed"] > 0 and counts["completed"] + counts["failed"] == 120 + 4100 + 1, counts
        failed = app.jobs(status="failed", limit=1000)
        assert failed.total == counts["failed"]
        assert app.resubmit_many("failed") == counts["failed"]
        assert app.stats()["counts"]["pending"] == counts["failed"]
        assert app.cancel(failed.items[0].id).state == "cancelled"
        assert app.purge("completed") == counts["completed"]
        check_redis_invariants(url, strict_keys=True)
        _assert_namespace_on_one_node(cluster, prefix, node)
        app.close()


def _assert_namespace_on_one_node(ports: list[int], prefix: str, node: str) -> None:
    for port in ports:
        client = redis.Redis(port=port, decode_responses=True)
        try:
            keys = list(client.scan_iter(match="{" + prefix + "}*", count=1000))
        finally:
            client.close()
        if f"127.0.0.1:{port}" == node:
            assert keys, f"namespace {prefix} has no keys on its own node {node}"
        else:
            assert not keys, f"namespace {prefix} leaked keys onto node {port}"
