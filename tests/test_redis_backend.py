"""Redis-specific behaviour: key layout, scripts, clocks, wake-ups, errors and atomicity."""

from __future__ import annotations

import logging
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import conveyor
from backends import REDIS_URL, fresh_url, require_or_skip
from conveyor.backends.base import ClaimedJob, ClaimRequest, ClaimsOnWake, JobQuery, Lease, NewJob, Outcome
from conveyor.errors import (
    BackendUnavailable,
    BadURL,
    ConfigurationError,
    InvalidName,
    InvalidState,
    JobNotFound,
)
from conveyor.ids import new_job_id
from redis_invariants import check_redis_invariants

redis = pytest.importorskip("redis")
from conveyor.backends.redis import RedisBackend  # noqa: E402
from conveyor.backends.redis_support import parse_redis_url  # noqa: E402

PAYLOAD = '{"args":[],"kwargs":{}}'


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A fresh namespace on the test Redis."""
    require_or_skip("redis")
    with fresh_url("redis", tmp_path) as value:
        yield value


@pytest.fixture
def backend(url: str) -> Iterator[RedisBackend]:
    b = RedisBackend(url)
    yield b
    b.close()


def job(queue: str = "default", **fields: object) -> NewJob:
    return NewJob(id=new_job_id(), task="t", queue=queue, payload=PAYLOAD, max_attempts=3, **fields)  # type: ignore[arg-type]


def claim(b: RedisBackend, *queues: str, limit: int = 10, lease: float = 30.0) -> list[str]:
    return [j.id for j in b.claim(ClaimRequest(queues or ("default",), limit, lease, "w"))]


# -- URL ---------------------------------------------------------------------------------
def test_url_options_are_stripped_and_validated() -> None:
    o = parse_redis_url("valkey://h:7000/2?prefix=app.v1&socket_timeout=3&cluster=no&audit_max=50")
    assert (o.prefix, o.cluster, o.audit_max) == ("app.v1", False, 50)
    assert o.client_url == "redis://h:7000/2?socket_timeout=3"
    assert o.blocking_url == "redis://h:7000/2"
    assert parse_redis_url("rediss://h").prefix == "conveyor"
    with pytest.raises(BadURL, match="prefix"):
        parse_redis_url("redis://h/0?prefix=a{b}")
    with pytest.raises(BadURL, match="cluster"):
        parse_redis_url("redis://h/0?cluster=maybe")
    with pytest.raises(BadURL, match="no host"):
        parse_redis_url("redis:///0")


def test_open_backend_picks_redis_for_every_scheme() -> None:
    for scheme in ("redis", "rediss", "valkey"):
        backend = conveyor.App(f"{scheme}://127.0.0.1:6379/0?prefix=x").backend
        assert isinstance(backend, RedisBackend)


# -- layout ------------------------------------------------------------------------------
def test_every_key_lives_under_the_namespace_hash_tag(backend: RedisBackend) -> None:
    backend.enqueue_many([job(key="k1"), job("other", priority=3), job(delay=100)])
    (claimed,) = backend.claim(ClaimRequest(("default",), 1, 30, "w"))
    backend.finish_many([Outcome(claimed.id, claimed.lease_token, "completed", 1, "w", 1.0, 2.0, "1")])
    client = backend.clients.retrying
    keys = list(client.scan_iter(match="*" + backend.prefix + "*"))
    assert keys and all(k.startswith("{" + backend.prefix + "}:") for k in keys), keys
    slots = {redis.crc.key_slot(k.encode()) for k in keys}
    assert len(slots) == 1, "one namespace, one hash slot"
    check_redis_invariants(backend.url)


def test_claim_order_is_priority_then_due_time_then_fifo(backend: RedisBackend) -> None:
    now = backend.now()
    a = job(priority=0, run_at=now - 10)
    b = job(priority=0, run_at=now - 20)
    c = job(priority=5)
    d = job("other", priority=5, run_at=now - 30)
    e = job(priority=-1, run_at=now - 100)
    late = job(priority=99, delay=60)
    f, g = job(), job()
    backend.enqueue_many([a, b, c, d, e, late])
    backend.enqueue_many([f, g])
    order = claim(backend, "default", "other", limit=100)
    assert order == [d.id, c.id, b.id, a.id, f.id, g.id, e.id]
    check_redis_invariants(backend.url)


def test_claims_come_back_in_batches_with_server_times(backend: RedisBackend) -> None:
    backend.enqueue_many([job() for _ in range(25)])
    first = backend.claim(ClaimRequest(("default",), 10, 30, "w"))
    assert len(first) == 10 and len({j.lease_token for j in first}) == 1
    assert all(abs(j.created_at - backend.now()) < 5 for j in first)
    assert len(claim(backend, limit=100)) == 15
    assert claim(backend) == []


# -- scripts ----------------------------------------------------------------------------
def test_scripts_reload_after_the_server_forgets_them(backend: RedisBackend) -> None:
    backend.migrate()
    backend.clients.once.script_flush()
    backend.enqueue_many([job()])
    assert len(claim(backend)) == 1
    backend.clients.once.script_flush()
    big = [job() for _ in range(4500)]  # three chunks in one MULTI/EXEC pipeline
    results = backend.enqueue_many(big)
    assert [r.id for r in results] == [j.id for j in big] and all(r.created for r in results)
    check_redis_invariants(backend.url)


def test_enqueue_many_repeated_after_a_lost_reply_stores_nothing_twice(backend: RedisBackend) -> None:
    jobs = [job(), job(key="once")]
    first = backend.enqueue_many(jobs)
    again = backend.enqueue_many(jobs)
    assert [r.id for r in again] == [r.id for r in first] and not any(r.created for r in again)
    assert backend.stats().counts["pending"] == 2


def test_names_and_payloads_are_data_never_code(backend: RedisBackend) -> None:
    nasty = "x') redis.call('FLUSHALL') --"
    payload = '{"args":["end\\"]] .. redis.call(\'FLUSHALL\')"],"kwargs":{}}'
    (r,) = backend.enqueue_many(
        [NewJob(new_job_id(), "t", "q-1.x_y", payload, 1, key=nasty, on_complete=nasty)]
    )
    record = backend.get(r.id)
    assert record is not None and record.key == nasty and record.args == ["end\"]] .. redis.call('FLUSHALL')"]
    assert backend.enqueue_many([NewJob(new_job_id(), "t", "q-1.x_y", PAYLOAD, 1, key=nasty)])[0].id == r.id


def test_a_separator_in_a_name_is_refused_not_misread(backend: RedisBackend) -> None:
    with pytest.raises(InvalidName, match="may not contain"):
        backend.enqueue_many([NewJob(new_job_id(), "a|b", "default", PAYLOAD, 1)])
    assert backend.stats().counts["pending"] == 0


def test_transactional_enqueue_is_refused_with_the_alternative(backend: RedisBackend) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL or SQLite"):
        backend.enqueue_many([job()], connection=object())


# -- clock, leases and fencing ----------------------------------------------------------
def test_now_is_the_server_clock(backend: RedisBackend) -> None:
    assert abs(backend.now() - time.time()) < 2  # same machine here; the point is it came from TIME
    seconds, _ = backend.clients.retrying.time()
    assert abs(backend.now() - seconds) < 2


def test_lease_expiry_requeues_then_fails_a_poison_pill(backend: RedisBackend) -> None:
    (r,) = backend.enqueue_many([NewJob(new_job_id(), "t", "default", PAYLOAD, max_attempts=2)])
    for expected in ("pending", "failed"):
        (held,) = backend.claim(ClaimRequest(("default",), 1, 0.05, "w"))
        time.sleep(0.1)
        backend.reap_expired()
        record = backend.get(r.id)
        assert record is not None and record.state == expected
        # The old holder is fenced off.
        late = Outcome(held.id, held.lease_token, "completed", held.attempt, "w", 1.0, 2.0, "1")
        assert backend.finish_many([late]) == [False]
        renewal = backend.extend_leases([Lease(held.id, held.lease_token)], 30)
        assert renewal.lost == {held.id}
    record = backend.get(r.id)
    assert record is not None and [a.outcome for a in record.attempts] == ["lost", "lost"]
    assert record.error == conveyor.backends.base.WORKER_LOST
    check_redis_invariants(backend.url)


def test_key_of_a_completed_job_absorbs_duplicates_for_the_retention_window(url: str) -> None:
    backend = RedisBackend(url, key_retention=0.3)
    (r,) = backend.enqueue_many([job(key="welcome")])
    (held,) = backend.claim(ClaimRequest(("default",), 1, 30, "w"))
    backend.finish_many([Outcome(held.id, held.lease_token, "completed", 1, "w", 1.0, 2.0, "1")])
    dup = backend.enqueue_many([job(key="welcome")])[0]
    assert (dup.id, dup.state, dup.created) == (r.id, "completed", False)
    time.sleep(0.4)
    fresh = backend.enqueue_many([job(key="welcome")])[0]
    assert fresh.created and fresh.id != r.id
    check_redis_invariants(url)
    backend.close()


# -- wake-ups ----------------------------------------------------------------------------
def test_idle_wait_wakes_on_enqueue_within_milliseconds(backend: RedisBackend) -> None:
    backend.wait_for_jobs(["default"], 0.01)  # connect first
    latencies = []

    def waiter(woke: threading.Event, stamp: list[float]) -> None:
        backend.wait_for_jobs(["default"], 5.0)
        stamp.append(time.perf_counter())
        woke.set()

    for _ in range(20):
        woke = threading.Event()
        stamp: list[float] = []
        t = threading.Thread(target=waiter, args=(woke, stamp))
        t.start()
        time.sleep(0.02)
        sent = time.perf_counter()
        backend.enqueue_many([job()])
        assert woke.wait(5)
        t.join()
        latencies.append(stamp[0] - sent)
        claim(backend, limit=100)
    p50 = statistics.median(latencies)
    assert p50 < 0.005, f"wake-up p50 {p50 * 1000:.2f} ms"


def test_idle_wait_wakes_when_a_delayed_job_becomes_due(backend: RedisBackend) -> None:
    backend.enqueue_many([job(delay=0.3)])
    start = time.monotonic()
    backend.wait_for_jobs(["default"], 5.0)
    waited = time.monotonic() - start
    assert 0.2 < waited < 0.6, waited
    assert len(claim(backend)) == 1


def test_idle_wait_learns_of_a_delayed_job_enqueued_while_it_blocks(backend: RedisBackend) -> None:
    done: list[float] = []
    t = threading.Thread(target=lambda: (backend.wait_for_jobs(["default"], 5.0), done.append(1.0)))
    start = time.monotonic()
    t.start()
    time.sleep(0.05)
    backend.enqueue_many([job(delay=0.2)])
    # woken by the push, it re-reads the next due time and blocks until then
    while t.is_alive():
        t.join(0.01)
        backend.wait_for_jobs(["default"], 0.0)
    assert time.monotonic() - start < 1.0


def test_idle_wait_times_out(backend: RedisBackend) -> None:
    start = time.monotonic()
    backend.wait_for_jobs(["default"], 0.2)
    assert 0.15 < time.monotonic() - start < 0.5


def _blpop_clients() -> int:
    """How many clients of the test server are blocked in BLPOP now."""
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        return sum(1 for c in admin.client_list() if c.get("cmd") == "blpop")
    finally:
        admin.close()


def _start_blocked(target: Callable[[], None]) -> threading.Thread:
    """Start ``target`` in a thread and return once one more client is blocked in BLPOP."""
    before = _blpop_clients()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5.0
    while _blpop_clients() <= before:
        assert time.monotonic() < deadline, "the waiter never blocked in BLPOP"
        time.sleep(0.005)
    return thread


def _request(limit: int = 10) -> ClaimRequest:
    return ClaimRequest(("default",), limit, 30.0, "w")


def test_wait_and_claim_returns_the_job_that_woke_it_leased(backend: RedisBackend) -> None:
    assert backend.wait_and_claim(_request(), 0.01) == []  # nothing waits: times out empty
    got: list[list[str]] = []
    t = _start_blocked(lambda: got.append([j.id for j in backend.wait_and_claim(_request(), 5.0)]))
    r = backend.enqueue_many([job(), job()])
    t.join(5)
    assert got == [[r[0].id, r[1].id]]
    record = backend.get(r[0].id)
    assert record is not None and record.state == "processing" and record.worker == "w"
    assert claim(backend) == []  # leased once, not twice
    check_redis_invariants(backend.url)


def test_wait_and_claim_takes_a_delayed_job_when_it_falls_due(backend: RedisBackend) -> None:
    (r,) = backend.enqueue_many([job(delay=0.3)])
    start = time.monotonic()
    jobs = backend.wait_and_claim(_request(), 5.0)
    assert time.monotonic() - start < 2.0
    assert [j.id for j in jobs] == [r.id] and jobs[0].attempt == 1


def test_wait_and_claim_keeps_priorities_and_the_limit(backend: RedisBackend) -> None:
    low = backend.enqueue_many([job(priority=0) for _ in range(3)])
    high = backend.enqueue_many([job(priority=5)])
    jobs = backend.wait_and_claim(_request(limit=2), 1.0)  # due now: claimed at once
    assert [j.id for j in jobs] == [high[0].id, low[0].id]


def test_wait_and_claim_reloads_its_script_after_a_flush(backend: RedisBackend) -> None:
    backend.wait_and_claim(_request(), 0.01)  # connected, scripts known
    backend.clients.once.script_flush()
    got: list[list[str]] = []
    t = _start_blocked(lambda: got.append([j.id for j in backend.wait_and_claim(_request(), 5.0)]))
    (r,) = backend.enqueue_many([job()])
    t.join(5)
    assert got == [[r.id]]


def test_a_worker_on_redis_claims_with_its_wake_up(url: str) -> None:
    app = conveyor.App(url)
    assert isinstance(app.backend, ClaimsOnWake)
    done = threading.Event()

    @app.task()
    def ping() -> None:
        done.set()

    claimed_on_wake: list[int] = []
    original = app.backend.wait_and_claim

    def spy(request: ClaimRequest, timeout: float) -> list[ClaimedJob]:
        jobs = original(request, timeout)
        claimed_on_wake.append(len(jobs))
        return jobs

    app.backend.wait_and_claim = spy  # type: ignore[method-assign]
    worker = conveyor.Worker(app, install_signal_handlers=False, schedules=False)
    thread = _start_blocked(worker.run)
    try:
        ping.enqueue()
        assert done.wait(10)
        assert 1 in claimed_on_wake  # the job came with the wake-up, not by a later claim
    finally:
        worker.stop()
        thread.join(10)
        app.close()


def test_a_job_claimed_with_the_wake_up_after_a_stop_is_given_back_unstarted(url: str) -> None:
    app = conveyor.App(url)
    ran = threading.Event()

    @app.task()
    def ping() -> None:
        ran.set()

    worker = conveyor.Worker(app, idle_wait=5.0, install_signal_handlers=False, schedules=False)
    thread = _start_blocked(worker.run)  # idle: blocked in BLPOP with its claim queued behind it
    try:
        worker.stop()
        job = ping.enqueue()  # wakes the BLPOP; the server runs the claim behind it
        thread.join(15)
        assert not thread.is_alive()
        assert not ran.is_set()
        assert worker.counts["released"] == 1, worker.counts
        stored = app.get(job.id)
        assert stored.status == "pending" and stored.attempt == 0
    finally:
        worker.stop()
        thread.join(10)
        app.close()


# -- the enqueue arguments ------------------------------------------------------------------
def test_enqueue_runs_and_single_jobs_mixed_keep_their_order_and_fields(backend: RedisBackend) -> None:
    stored = backend.enqueue_many([job()])[0]
    twin = new_job_id()
    batch = [
        job(),
        job(),
        job(priority=3),  # another shape: a new run
        job(key="k1", on_complete="cb"),  # a single-job record between runs
        NewJob(twin, "t", "default", PAYLOAD, 3),
        NewJob(twin, "t", "default", PAYLOAD, 3),  # the same id twice in one call: stored once
        NewJob(stored.id, "t", "default", PAYLOAD, 3),  # already stored: reported
        job(trace_context="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        job(queue="other", delay=30.0),
        job(key="k1"),  # keep mode: the holder answers
    ]
    results = backend.enqueue_many(batch)
    assert [r.created for r in results] == [True, True, True, True, True, False, False, True, True, False]
    assert [r.id for r in results[:5]] == [j.id for j in batch[:5]]
    assert results[5].id == twin and results[6].id == stored.id and results[9].id == batch[3].id
    assert all(r.state == "pending" for r in results)
    keyed = backend.get(batch[3].id)
    assert keyed is not None and keyed.key == "k1" and keyed.on_complete == "cb"
    traced = backend.get(batch[7].id)
    assert traced is not None and traced.trace_id == "0af7651916cd43dd8448eb211c80319c"
    delayed = backend.get(batch[8].id)
    assert delayed is not None and delayed.queue == "other"
    assert (delayed.run_at - delayed.created_at).total_seconds() > 29
    assert backend.stats().counts["pending"] == 8
    assert claim(backend, limit=3) == [batch[2].id, stored.id, twin]  # twin's id is the older
    check_redis_invariants(backend.url)


# -- errors and the server -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unreachable_server_raises_backend_unavailable_quickly() -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{_free_port()}/0?prefix=tnowhere")
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1"):
        backend.claim(ClaimRequest(("default",), 1, 30, "w"))
    assert time.monotonic() - start < 5


def test_warns_once_when_the_server_has_no_persistence(url: str, caplog: pytest.LogCaptureFixture) -> None:
    client = redis.Redis.from_url(url.split("?")[0], decode_responses=True)
    if client.config_get("appendonly")["appendonly"] != "no" or client.config_get("save")["save"]:
        pytest.skip("the test Redis has persistence on")
    backend = RedisBackend(url)
    with caplog.at_level(logging.WARNING, logger="conveyor.redis"):
        backend.stats()
        backend.stats()
    warnings = [r for r in caplog.records if r.name == "conveyor.redis"]
    assert len(warnings) == 1 and "no persistence" in warnings[0].getMessage()
    backend.close()


def test_admin_errors_name_the_job(backend: RedisBackend) -> None:
    with pytest.raises(JobNotFound, match="nope"):
        backend.cancel("nope")
    (r,) = backend.enqueue_many([job()])
    claim(backend)
    with pytest.raises(InvalidState, match="processing"):
        backend.delete(r.id)
    with pytest.raises(InvalidState, match="only failed or cancelled"):
        backend.resubmit(r.id)


def test_listing_filters_use_the_indexes(backend: RedisBackend) -> None:
    backend.enqueue_many([job("a") for _ in range(5)] + [job("b") for _ in range(3)])
    backend.enqueue_many([NewJob(new_job_id(), "other", "a", PAYLOAD, 1)])
    assert backend.list_jobs(JobQuery(queue="a")).total == 6
    assert backend.list_jobs(JobQuery(queue="a", task="other")).total == 1
    page = backend.list_jobs(JobQuery(status="pending", limit=4, offset=2))
    assert page.total == 9 and len(page.items) == 4
    everything = backend.list_jobs(JobQuery(limit=100)).items
    keys = [(r.created_at, r.id) for r in everything]
    assert keys == sorted(keys, reverse=True)
    assert backend.list_jobs(JobQuery(limit=0)).items == []


def test_audit_index_is_bounded(url: str) -> None:
    backend = RedisBackend(url + "&audit_max=5")
    backend.enqueue_many([job() for _ in range(8)])
    held = backend.claim(ClaimRequest(("default",), 8, 30, "w"))
    backend.finish_many([Outcome(j.id, j.lease_token, "completed", 1, "w", 1.0, 2.0, "1") for j in held])
    assert len(backend.audits(limit=100)) == 5
    assert len(backend.audits(held[0].id)) == 1  # a job keeps its own records
    check_redis_invariants(url)
    backend.close()
