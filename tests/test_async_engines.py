"""What the async side does per engine: native drivers, transactional enqueue with an
AsyncConnection on PostgreSQL, one async side per event loop, refusals that name the fix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor
from backends import POSTGRES_URL, fresh_url, require_or_skip
from conveyor.backends.aio import ThreadedAsyncBackend
from conveyor.errors import ConfigurationError, JobNotFound


def _app(engine: str, tmp_path: Path) -> Iterator[conveyor.App]:
    require_or_skip(engine)
    with fresh_url(engine, tmp_path) as url:
        application = conveyor.App(url)
        yield application
        application.close()


@pytest.fixture
def pg_app(tmp_path: Path) -> Iterator[conveyor.App]:
    yield from _app("postgres", tmp_path)


@pytest.fixture
def redis_app(tmp_path: Path) -> Iterator[conveyor.App]:
    yield from _app("redis", tmp_path)


def test_each_engine_gets_its_native_async_side(pg_app: conveyor.App, redis_app: conveyor.App) -> None:
    from conveyor.backends.pg_async import AsyncPostgresBackend
    from conveyor.backends.redis_async import AsyncRedisBackend

    async def sides() -> list[object]:
        found = [pg_app.async_backend, redis_app.async_backend, conveyor.App("memory://sides").async_backend]
        await pg_app.aclose()
        await redis_app.aclose()
        return found

    pg, rd, memory = asyncio.run(sides())
    assert isinstance(pg, AsyncPostgresBackend) and isinstance(rd, AsyncRedisBackend)
    assert type(memory) is ThreadedAsyncBackend


def test_one_async_side_per_event_loop(pg_app: conveyor.App) -> None:
    """Async pools belong to the loop that opened them: a second asyncio.run gets its own."""
    pg_app.declare("t")

    async def once() -> tuple[object, str]:
        job = await pg_app.aenqueue("t")
        side = pg_app.async_backend
        await pg_app.aclose()
        return side, job.id

    first, first_id = asyncio.run(once())
    second, second_id = asyncio.run(once())
    assert first is not second
    assert pg_app.get(first_id).state == pg_app.get(second_id).state == "pending"


def test_aenqueue_in_an_async_transaction_exists_only_if_it_commits(pg_app: conveyor.App) -> None:
    psycopg = pytest.importorskip("psycopg")

    @pg_app.task()
    def send(n: int) -> int:
        return n

    async def body() -> tuple[str, str, str]:
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
            rolled = await send.options(connection=conn).aenqueue(1)
            with pytest.raises(JobNotFound):
                await pg_app.aget(rolled.id)  # other sessions cannot see it before the commit
            await conn.rollback()
            async with conn.transaction():
                kept = await pg_app.aenqueue("send", args=[2], connection=conn)
                (keyed,) = await pg_app.aenqueue_many(
                    [{"task": "send", "args": [3], "key": "k"}], connection=conn
                )
        await pg_app.aclose()
        return rolled.id, kept.id, keyed.id

    rolled_id, kept_id, keyed_id = asyncio.run(body())
    with pytest.raises(JobNotFound):
        pg_app.get(rolled_id)
    assert pg_app.get(kept_id).state == pg_app.get(keyed_id).state == "pending"
    assert conveyor.Worker(pg_app).process_batch(10).completed == 2


def test_aenqueue_refuses_connections_it_cannot_join(pg_app: conveyor.App, redis_app: conveyor.App) -> None:
    psycopg = pytest.importorskip("psycopg")
    pg_app.declare("t")
    redis_app.declare("t")

    async def body() -> None:
        with psycopg.connect(POSTGRES_URL) as sync_conn, pytest.raises(ConfigurationError, match="Async"):
            await pg_app.aenqueue("t", connection=sync_conn)
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
            with pytest.raises(ConfigurationError, match="autocommit"):
                await pg_app.aenqueue("t", connection=conn)
        with pytest.raises(ConfigurationError, match="Redis has no transaction"):
            await redis_app.aenqueue("t", connection=object())
        await pg_app.aclose()
        await redis_app.aclose()

    asyncio.run(body())
    assert pg_app.stats()["counts"]["pending"] == redis_app.stats()["counts"]["pending"] == 0


def test_redis_aenqueue_many_past_one_script_call(redis_app: conveyor.App) -> None:
    redis_app.declare("t")

    async def body() -> list[conveyor.Job]:
        jobs = await redis_app.aenqueue_many([{"task": "t", "args": [i]} for i in range(4500)])
        await redis_app.aclose()
        return jobs

    jobs = asyncio.run(body())
    assert len({j.id for j in jobs}) == 4500
    assert redis_app.stats()["counts"]["pending"] == 4500


def test_redis_aenqueues_past_the_pool_size_wait_for_a_connection(
    redis_app: conveyor.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More concurrent calls than connections queue for one instead of failing.

    A pool of 4 stands for a loaded server: with redis.asyncio's default pool the
    calls past its size raised MaxConnectionsError ("Too many connections").
    """
    from conveyor.backends import redis_async

    monkeypatch.setattr(redis_async, "MAX_CONNECTIONS", 4)
    redis_app.declare("t")

    async def body() -> tuple[list[conveyor.Job], int]:
        try:
            jobs = await asyncio.gather(*(redis_app.aenqueue("t", args=[i]) for i in range(300)))
            return jobs, redis_app.async_backend._client.connection_pool.max_connections  # type: ignore[attr-defined]
        finally:
            await redis_app.aclose()

    jobs, pool_size = asyncio.run(body())
    assert pool_size == 4
    assert len({j.id for j in jobs}) == 300
    assert redis_app.stats()["counts"]["pending"] == 300
