"""What only the memory backend (and the registry that opens it) promises; the contract is in conformance/."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest

import conveyor
from conveyor.backends import REGISTRY, SCHEMES, open_backend
from conveyor.backends.base import ClaimRequest, NewJob
from conveyor.backends.memory import MemoryBackend, drop_store
from conveyor.errors import BadURL, ConfigurationError


@pytest.fixture
def name() -> Iterator[str]:
    """A store name of this test's own."""
    tag = "m" + secrets.token_hex(5)
    yield tag
    drop_store(tag)


def job(job_id: str, queue: str = "default") -> NewJob:
    return NewJob(job_id, "t", queue, '{"args":[],"kwargs":{}}', max_attempts=1)


def test_one_url_in_one_process_is_one_store(name: str) -> None:
    producer = conveyor.App(f"memory://{name}")
    producer.declare("t")
    enqueued = producer.enqueue("t")
    consumer = open_backend(f"memory://{name}")
    (claimed,) = consumer.claim(ClaimRequest(("default",), 5, 30.0, "w"))
    assert claimed.id == enqueued.id
    producer.close()  # closing a handle keeps the store for the others
    assert consumer.get(enqueued.id) is not None


def test_another_name_or_a_dropped_store_starts_empty(name: str) -> None:
    backend = MemoryBackend(f"memory://{name}")
    backend.enqueue_many([job("a")])
    assert MemoryBackend(f"memory://{name}-other").get("a") is None
    drop_store(name)
    assert MemoryBackend(f"memory://{name}").get("a") is None


BAD_URLS = ["memory://", "memory://has space", "memory://ok?x=1", "memory://" + "a" * 129]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_memory_urls_say_what_is_valid(url: str) -> None:
    with pytest.raises(BadURL, match="memory://"):
        open_backend(url)


def test_transactional_enqueue_is_refused(name: str) -> None:
    backend = MemoryBackend(f"memory://{name}")
    with pytest.raises(ConfigurationError, match="connection="):
        backend.enqueue_many([job("a")], connection=object())
    assert backend.get("a") is None


def test_an_idle_waiter_wakes_on_enqueue(name: str) -> None:
    backend = MemoryBackend(f"memory://{name}")
    threading.Timer(0.2, lambda: backend.enqueue_many([job("a", "q")])).start()
    started = time.monotonic()
    backend.wait_for_jobs(["q"], timeout=10)
    assert 0.1 < time.monotonic() - started < 5
    assert [c.id for c in backend.claim(ClaimRequest(("q",), 1, 30.0, "w"))] == ["a"]


def test_a_waiter_wakes_when_a_delayed_job_falls_due(name: str) -> None:
    backend = MemoryBackend(f"memory://{name}")
    backend.enqueue_many([job("a")._replace(delay=0.3)])
    started = time.monotonic()
    backend.wait_for_jobs(["default"], timeout=10)
    assert 0.2 < time.monotonic() - started < 5


def test_registry_lists_every_engine_and_refuses_unknown_schemes() -> None:
    assert [entry.name for entry in REGISTRY] == ["sqlite", "postgres", "redis", "memory"]
    assert "memory" in SCHEMES and "postgresql" in SCHEMES
    with pytest.raises(BadURL, match=r"unknown backend URL 'mysql://x'.*memory://NAME"):
        open_backend("mysql://x")
