"""Redis for producers on an event loop: ``redis.asyncio`` running the same Lua scripts.

Enqueue and reads of one job, the calls a web handler makes, run natively on
``redis.asyncio`` with the scripts of ``backends/lua`` (``script_source``) and the
sync backend's argument and reply codecs (``enqueue_args``, ``enqueue_results``,
``decode_record``): one copy of each script. Listings, stats and admin writes, and
an enqueue larger than one script call, go to the sync backend on the bounded
thread pool of :class:`ThreadedAsyncBackend`.

The client holds at most :data:`MAX_CONNECTIONS` connections and more concurrent calls
wait for a free one (up to :data:`POOL_TIMEOUT`) rather than fail: a web process may
``aenqueue`` from a thousand requests at once, and redis.asyncio's default pool raises
``MaxConnectionsError`` past 100 connections in use. A standalone server gets
redis.asyncio's ``BlockingConnectionPool``; a cluster client, whose per-node pools
cannot block, gets a semaphore of the same size in front of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import ClusterDownError

from ..errors import BackendUnavailable, ConfigurationError
from .aio import ThreadedAsyncBackend
from .base import EnqueueResult, JobRecord, NewJob
from .redis import ENQUEUE_CHUNK, RedisBackend
from .redis_enqueue import enqueue_args, enqueue_results
from .redis_support import CONNECT_TIMEOUT, SOCKET_TIMEOUT, decode_record, script_source

_NATIVE_SCRIPTS = ("enqueue", "get")
#: Connections the async client opens at most (per node on a cluster); more calls wait.
MAX_CONNECTIONS = 50
#: How long a call waits for a free connection before Redis counts as unavailable.
POOL_TIMEOUT = 20.0


class AsyncRedisBackend(ThreadedAsyncBackend):
    """The AsyncBackend protocol on Redis/Valkey (see module docstring)."""

    backend: RedisBackend

    def __init__(self, backend: RedisBackend) -> None:
        super().__init__(backend)
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._client_lock = asyncio.Lock()
        #: Bounds the calls in flight on a cluster client (a standalone one's pool blocks itself).
        self._gate: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"<AsyncRedisBackend {self.backend.server} prefix={self.backend.prefix!r}>"

    async def _script(self, name: str) -> Any:
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    # The sync side checks the schema and the server (and detects a cluster) once.
                    cluster = (await asyncio.to_thread(lambda: self.backend.clients)).cluster
                    client = self._new_client(cluster)
                    self._scripts = {n: client.register_script(script_source(n)) for n in _NATIVE_SCRIPTS}
                    self._client = client
        return self._scripts[name]

    def _new_client(self, cluster: bool) -> Any:
        url = self.backend.options.client_url
        timeouts = {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": SOCKET_TIMEOUT}
        if cluster:
            self._gate = asyncio.Semaphore(MAX_CONNECTIONS)
            return AsyncRedisCluster.from_url(
                url, decode_responses=True, max_connections=MAX_CONNECTIONS, **timeouts
            )
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT, **timeouts
        )
        return redis.asyncio.Redis.from_pool(pool)  # the client owns the pool: aclose closes it

    async def _run(self, name: str, args: Sequence[Any]) -> Any:
        script = await self._script(name)
        try:
            if self._gate is None:
                return await script(keys=[self.backend.base], args=list(args))
            async with asyncio.timeout(POOL_TIMEOUT):
                await self._gate.acquire()
            try:
                return await script(keys=[self.backend.base], args=list(args))
            finally:
                self._gate.release()
        except (redis.ConnectionError, redis.TimeoutError, ClusterDownError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"Redis at {self.backend.server} is unavailable ({type(exc).__name__}: {exc})"
            ) from exc

    async def aclose(self) -> None:
        """Close the async connections and the thread pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        await super().aclose()

    async def enqueue_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[EnqueueResult]:
        """One enqueue script call on the async client (larger batches: the sync path's MULTI)."""
        if connection is not None:
            raise ConfigurationError(
                "transactional enqueue (connection=) needs PostgreSQL or SQLite: Redis has no "
                "transaction of yours to join; enqueue after your commit instead"
            )
        if not jobs:
            return []
        if len(jobs) > ENQUEUE_CHUNK:
            return await super().enqueue_many(jobs)
        return enqueue_results(jobs, await self._run("enqueue", enqueue_args(jobs)))

    async def get(self, job_id: str) -> JobRecord | None:
        """One job with its attempt records, read atomically by the get script."""
        flat, attempts = await self._run("get", ["1", job_id])
        return decode_record(job_id, flat, attempts)


__all__ = ["AsyncRedisBackend"]
