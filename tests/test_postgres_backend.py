"""PostgreSQL-specific behaviour: transactional enqueue, the SQL enqueue function and a trigger,
keys across connections, LISTEN/NOTIFY wake-ups, plans of the hot queries, URLs."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import conveyor
from backends import POSTGRES_URL, fresh_url, require_or_skip
from conveyor.backends.base import ClaimRequest, JobQuery, NewJob, Outcome
from conveyor.errors import BackendUnavailable, BadURL, ConfigurationError, JobNotFound
from conveyor.ids import new_job_id
from helpers import running_worker, wait_for

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402

from conveyor.backends.pg_url import parse_postgres_url  # noqa: E402
from conveyor.backends.postgres import PostgresBackend  # noqa: E402

PAYLOAD = '{"args":[],"kwargs":{}}'
KILL = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s"
CLAIM_PARAMS = {
    "queues": ["default"], "limit": 5, "flow_limit": 5, "token": "t", "lease": 30.0, "worker": "w",
    "commit": None,
}  # fmt: skip


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL."""
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path) as value:
        yield value


@pytest.fixture
def app(url: str) -> Iterator[conveyor.App]:
    application = conveyor.App(url, lease=2.0, reaper_interval=0.2, grace=5.0)
    yield application
    application.close()


@pytest.fixture
def backend(app: conveyor.App) -> PostgresBackend:
    assert isinstance(app.backend, PostgresBackend)
    app.backend.migrate()
    return app.backend


def new_job(queue: str = "default", payload: str = PAYLOAD, **fields: object) -> NewJob:
    return NewJob(id=new_job_id(), task="t", queue=queue, payload=payload, max_attempts=3, **fields)  # type: ignore[arg-type]


# -- transactional enqueue -------------------------------------------------------------------


def test_enqueue_in_a_rolled_back_transaction_leaves_no_job(
    app: conveyor.App, backend: PostgresBackend
) -> None:
    @app.task()
    def send(n: int) -> int:
        return n

    with psycopg.connect(POSTGRES_URL) as conn:  # not autocommit: the first statement opens a transaction
        job = send.options(connection=conn).enqueue(1)
        many = app.enqueue_many([{"task": "send", "args": [2]}], connection=conn)
        with pytest.raises(JobNotFound):
            app.get(job.id)  # other sessions cannot see it before the commit
        conn.rollback()
    for handle in (job, *many):
        with pytest.raises(JobNotFound):
            app.get(handle.id)
    assert app.stats()["counts"]["pending"] == 0
    assert conveyor.Worker(app).process_batch(10).processed == 0


def test_enqueue_in_a_committed_transaction_runs(app: conveyor.App, backend: PostgresBackend) -> None:
    ran: list[int] = []

    @app.task()
    def send(n: int) -> int:
        ran.append(n)
        return n

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        with conn.transaction():
            job = app.enqueue("send", args=[7], connection=conn)
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert app.get(job.id).state == "pending"
    result = conveyor.Worker(app).process_batch(10)
    assert (result.processed, result.completed, ran) == (1, 1, [7])
    assert job.result(timeout=5) == 7


def test_outbox_pattern_business_row_and_job_commit_or_vanish_together(
    app: conveyor.App, backend: PostgresBackend
) -> None:
    app.declare("ship_order")
    table = sql.Identifier(backend.schema, "orders")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, item text)").format(table))
        with pytest.raises(RuntimeError), conn.transaction():
            order_id = conn.execute(
                sql.SQL("INSERT INTO {} (item) VALUES ('book') RETURNING id").format(table)
            ).fetchone()
            app.enqueue("ship_order", args=[order_id], connection=conn)
            raise RuntimeError("payment declined")  # the order and its job vanish together
        orders = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    assert orders == (0,) and app.stats()["counts"]["pending"] == 0


def test_enqueue_with_a_keyed_job_inside_the_callers_transaction(
    app: conveyor.App, backend: PostgresBackend
) -> None:
    app.declare("t")
    with psycopg.connect(POSTGRES_URL) as conn:
        first = app.enqueue("t", key="k", connection=conn)
        second = app.enqueue("t", key="k", connection=conn)  # sees its own transaction's job
        assert first.id == second.id
        conn.commit()
    assert app.jobs(status="pending").total == 1


def test_connection_must_be_a_psycopg_connection_in_a_transaction(
    app: conveyor.App, backend: PostgresBackend
) -> None:
    app.declare("t")
    with pytest.raises(ConfigurationError, match="psycopg"):
        app.enqueue("t", connection=object())
    with (
        psycopg.connect(POSTGRES_URL, autocommit=True) as conn,
        pytest.raises(ConfigurationError, match="transaction"),
    ):
        app.enqueue("t", connection=conn)  # autocommit, no transaction: nothing to join
    with psycopg.connect(POSTGRES_URL) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        with pytest.raises(ConfigurationError, match="failed transaction"):
            app.enqueue("t", connection=conn)
    assert app.stats()["counts"]["pending"] == 0


def test_commit_wakes_an_idle_worker(app: conveyor.App, backend: PostgresBackend) -> None:
    started: list[float] = []

    @app.task()
    def tick() -> None:
        started.append(time.time())

    with running_worker(app, idle_wait=3.0):
        wait_for(lambda: backend._listener is not None and backend._listener.listening)
        time.sleep(0.2)  # the worker is now asleep in wait_for_jobs
        with psycopg.connect(POSTGRES_URL) as conn:
            app.enqueue("tick", connection=conn)
            time.sleep(0.3)
            assert not started, "nothing runs before the commit"
            committed = time.time()
            conn.commit()
        wait_for(lambda: started, timeout=5)
    assert started[0] - committed < 1.0, "woken by NOTIFY, not by the 3 s poll"


# -- the SQL enqueue function and a trigger --------------------------------------------------

TRIGGER = """
CREATE TABLE {schema}.signups (id serial PRIMARY KEY, email text NOT NULL);

CREATE FUNCTION {schema}.signups_enqueue_welcome() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.enqueue(
        'send_welcome',
        args => jsonb_build_array(NEW.email),
        kwargs => jsonb_build_object('signup_id', NEW.id),
        queue => 'emails',
        key => 'welcome:' || NEW.email);
    RETURN NEW;
END
$$;

CREATE TRIGGER signups_enqueue_welcome AFTER INSERT ON {schema}.signups
FOR EACH ROW EXECUTE FUNCTION {schema}.signups_enqueue_welcome();
"""


def test_trigger_enqueues_exactly_one_job_that_runs(app: conveyor.App, backend: PostgresBackend) -> None:
    sent: list[tuple[str, int]] = []

    @app.task(queue="emails")
    def send_welcome(email: str, signup_id: int) -> str:
        sent.append((email, signup_id))
        return email

    schema = sql.Identifier(backend.schema)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL(TRIGGER).format(schema=schema))  # type: ignore[arg-type]
        with conn.transaction():
            conn.execute(sql.SQL("INSERT INTO {}.signups (email) VALUES ('a@example.com')").format(schema))
    page = app.jobs()
    assert page.total == 1
    (record,) = page.items
    assert (record.task, record.queue, record.state, record.key) == (
        "send_welcome",
        "emails",
        "pending",
        "welcome:a@example.com",
    )
    assert record.args == ["a@example.com"] and record.kwargs == {"signup_id": 1}
    assert len(record.id) == 32 and int(record.id, 16) >= 0
    conveyor.Worker(app, queues=["emails"], install_signal_handlers=False).run(burst=True)
    assert sent == [("a@example.com", 1)]
    assert app.get(record.id).state == "completed" and app.get(record.id).result(timeout=0) == "a@example.com"


def test_trigger_in_a_rolled_back_transaction_enqueues_nothing(
    app: conveyor.App, backend: PostgresBackend
) -> None:
    schema = sql.Identifier(backend.schema)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL(TRIGGER).format(schema=schema))  # type: ignore[arg-type]
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute(sql.SQL("INSERT INTO {}.signups (email) VALUES ('b@example.com')").format(schema))
            raise RuntimeError("rolled back")
    assert app.jobs().total == 0


def test_sql_enqueue_function_checks_names_and_honours_keys(backend: PostgresBackend) -> None:
    enqueue = sql.SQL("SELECT {}.enqueue(%s, queue => %s, key => %s, delay => %s)").format(
        sql.Identifier(backend.schema)
    )
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        (first,) = conn.execute(enqueue, ["report", "batch", "k1", 60.0]).fetchone()  # type: ignore[misc]
        (again,) = conn.execute(enqueue, ["report", "batch", "k1", 0.0]).fetchone()  # type: ignore[misc]
        assert first == again, "the key returns the waiting job"
        for task, queue in (("bad name", "batch"), ("report", "no/slash"), ("x" * 129, "batch")):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid"):
                conn.execute(enqueue, [task, queue, None, 0.0])
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="args"):
            conn.execute(
                sql.SQL("SELECT {}.enqueue('t', args => '{{}}')").format(sql.Identifier(backend.schema))
            )
    record = backend.get(first)
    assert record is not None and record.state == "pending" and record.key == "k1"
    assert record.max_attempts == 4 and record.args == [] and record.kwargs == {}
    assert record.run_at.timestamp() > backend.now() + 50, "delay is seconds on the database clock"


# -- keys across connections -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["keep", "replace"])
def test_concurrent_enqueues_of_one_key_leave_one_waiting_job(backend: PostgresBackend, mode: str) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[str] = []
    errors: list[BaseException] = []
    others = [PostgresBackend(backend.url) for _ in range(threads)]  # separate pools: separate sessions

    def enqueue(b: PostgresBackend, n: int) -> None:
        try:
            barrier.wait()
            (result,) = b.enqueue_many([new_job(key="same", key_mode=mode, payload=f'{{"args":[{n}]}}')])
            results.append(result.id)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=enqueue, args=(b, n)) for n, b in enumerate(others)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    for b in others:
        b.close()
    assert not errors, errors
    assert len(set(results)) == 1, results
    assert backend.stats().counts["pending"] == 1


def test_follow_up_jobs_are_stored_only_with_an_applied_outcome(backend: PostgresBackend) -> None:
    backend.enqueue_many([new_job(), new_job()])
    first, second = backend.claim(ClaimRequest(("default",), 2, 30, "w"))
    now = time.time()
    kept = new_job("callbacks", key=f"cb:{first.id}")
    dropped = new_job("callbacks", key=f"cb:{second.id}")
    outcomes = [
        Outcome(first.id, first.lease_token, "completed", 1, "w", now, now, follow_ups=(kept,)),
        Outcome(second.id, "not-its-token", "completed", 1, "w", now, now, follow_ups=(dropped,)),
    ]
    assert backend.finish_many(outcomes) == [True, False]
    assert backend.get(kept.id) is not None and backend.get(dropped.id) is None
    assert backend.stats().queues["callbacks"]["pending"] == 1


def key_rows(backend: PostgresBackend) -> list[str]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT key FROM {} ORDER BY key").format(sql.Identifier(backend.schema, "keys"))
        )
        return [r[0] for r in rows.fetchall()]


def test_purge_and_delete_drop_the_rows_of_keys_no_job_uses_any_more(backend: PostgresBackend) -> None:
    first = new_job(key="a")
    backend.enqueue_many([first, new_job(key="b")])
    (claimed, _) = backend.claim(ClaimRequest(("default",), 2, 30, "w"))
    backend.enqueue_many([new_job(key="a", key_mode="replace")])  # "a" runs: a second job for it
    assert key_rows(backend) == ["a", "b"]
    done = time.time()
    outcome = Outcome(claimed.id, claimed.lease_token, "completed", 1, "w", done, done)
    assert backend.finish_many([outcome]) == [True]
    backend.purge(["completed"], backend.now() + 1)
    assert key_rows(backend) == ["a", "b"], "each key still has a job"
    for job in backend.list_jobs(JobQuery(status="pending")).items:
        if job.key == "a":
            backend.delete(job.id)
    assert key_rows(backend) == ["b"]


# -- wake-ups ----------------------------------------------------------------------------------


def test_wait_for_jobs_returns_on_notify(backend: PostgresBackend) -> None:
    backend.wait_for_jobs(["default"], 0.01)  # starts the listener
    assert backend._listener is not None and backend._listener.wait_listening(5)
    woke: list[float] = []

    def waiter() -> None:
        backend.wait_for_jobs(["default"], 10.0)
        woke.append(time.monotonic())

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    enqueued = time.monotonic()
    backend.enqueue_many([new_job()])
    thread.join(10)
    assert woke and woke[0] - enqueued < 1.0


def test_notify_for_another_queue_does_not_wake(backend: PostgresBackend) -> None:
    backend.wait_for_jobs(["default"], 0.01)
    started = time.monotonic()
    threading.Timer(0.1, lambda: backend.enqueue_many([new_job("other")])).start()
    backend.wait_for_jobs(["default"], 0.6)
    assert time.monotonic() - started >= 0.55


def test_wait_for_jobs_wakes_when_a_delayed_job_falls_due(backend: PostgresBackend) -> None:
    backend.enqueue_many([new_job(delay=0.5)])
    started = time.monotonic()
    backend.wait_for_jobs(["default"], 10.0)
    assert 0.3 < time.monotonic() - started < 2.0
    assert len(backend.claim(ClaimRequest(("default",), 5, 30, "w"))) == 1


def test_idle_worker_runs_a_delayed_job_when_it_falls_due(
    app: conveyor.App, backend: PostgresBackend
) -> None:
    started: list[float] = []

    @app.task()
    def later() -> None:
        started.append(time.monotonic())

    with running_worker(app, idle_wait=3.0):
        wait_for(lambda: backend._listener is not None and backend._listener.listening)
        time.sleep(0.2)  # asleep in wait_for_jobs, with nothing due
        enqueued = time.monotonic()
        later.options(delay=0.6).enqueue()  # the NOTIFY tells the sleeper when to wake
        wait_for(lambda: started, timeout=5)
    assert 0.5 <= started[0] - enqueued < 1.5, started[0] - enqueued


def test_a_due_job_locked_elsewhere_does_not_make_idle_workers_spin(
    app: conveyor.App, backend: PostgresBackend
) -> None:
    ran: list[float] = []

    @app.task()
    def locked() -> None:
        ran.append(time.monotonic())

    job = locked.enqueue()
    claims = 0
    claim = backend.claim

    def counting_claim(request: ClaimRequest) -> list[conveyor.backends.base.ClaimedJob]:
        nonlocal claims
        claims += 1
        return claim(request)

    backend.claim = counting_claim  # type: ignore[method-assign]
    table = sql.Identifier(backend.schema, "jobs")
    with psycopg.connect(POSTGRES_URL) as conn, running_worker(app, idle_wait=3.0):
        conn.execute(sql.SQL("SELECT 1 FROM {} WHERE id = %s FOR UPDATE").format(table), [job.id])
        time.sleep(1.5)  # the claim skips the locked row; the worker backs off instead of spinning
        assert not ran and claims < 25, claims
        conn.rollback()
        released = time.monotonic()
        wait_for(lambda: ran, timeout=5)
    assert ran[0] - released < 2.5


def test_without_listen_it_polls(tmp_path: Path) -> None:
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path) as base:
        b = PostgresBackend(base + "&listen=false&poll=0.05")
        try:
            b.migrate()
            threading.Timer(0.2, lambda: b.enqueue_many([new_job()])).start()
            started = time.monotonic()
            b.wait_for_jobs(["default"], 5.0)
            while not b.claim(ClaimRequest(("default",), 1, 30, "w")):
                b.wait_for_jobs(["default"], 5.0)
            assert time.monotonic() - started < 1.5 and b._listener is None
        finally:
            b.close()


def test_idle_worker_picks_up_jobs_in_milliseconds(app: conveyor.App, backend: PostgresBackend) -> None:
    latencies: list[float] = []

    @app.task()
    def ping(sent: float) -> None:
        latencies.append(time.time() - sent)

    with running_worker(app, idle_wait=3.0):
        wait_for(lambda: backend._listener is not None and backend._listener.listening)
        for _ in range(30):
            time.sleep(0.05)
            ping.enqueue(time.time())
        wait_for(lambda: len(latencies) == 30, timeout=10)
    p50 = statistics.median(latencies) * 1000
    print(f"idle pickup p50 {p50:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    assert p50 < 50, f"p50 {p50:.1f} ms: an idle worker should be woken by NOTIFY"


# -- failure behaviour -------------------------------------------------------------------------


def test_unreachable_server_raises_quickly_instead_of_hanging() -> None:
    b = PostgresBackend(
        "postgresql://postgres@127.0.0.1:1/test?schema=nowhere&pool_timeout=1&connect_timeout=1"
    )
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="PostgreSQL"):
        b.stats()
    assert time.monotonic() - started < 5
    b.close()


def test_idle_connections_killed_by_the_server_are_replaced_transparently(tmp_path: Path) -> None:
    require_or_skip("postgres")
    with fresh_url("postgres", tmp_path) as base:
        name = "conveyor_test_" + new_job_id()[-8:]
        b = PostgresBackend(f"{base}&application_name={name}&pool_min=3")
        try:
            b.migrate()
            b.enqueue_many([new_job()])
            wait_for(lambda: b._pool is not None and b._pool.get_stats().get("pool_available", 0) >= 2)
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                killed = conn.execute(KILL, [name]).fetchone()
            assert killed is not None and killed[0] >= 2
            time.sleep(0.2)
            for _ in range(5):  # every idle connection was dead: none of them is handed out
                assert b.stats().counts["pending"] == 1
        finally:
            b.close()


def test_a_forked_child_opens_its_own_connections(backend: PostgresBackend) -> None:
    backend.enqueue_many([new_job()])
    backend.wait_for_jobs(["default"], 0.01)  # the parent's pool and listener are running
    pid = os.fork()
    if pid == 0:  # the child: must not touch the parent's sessions
        code = 1
        try:
            backend.enqueue_many([new_job()])
            code = 0 if backend.stats().counts["pending"] == 2 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.stats().counts["pending"] == 2, "the parent's connections still work"
    assert len(backend.claim(ClaimRequest(("default",), 5, 30, "w"))) == 2


# -- plans and URLs --------------------------------------------------------------------------


def test_claim_uses_the_partial_index_with_many_finished_jobs(backend: PostgresBackend) -> None:
    schema = sql.Identifier(backend.schema)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.jobs (id, task, queue, state, payload, run_at, max_attempts, finished_at) "
                "SELECT md5(g::text), 't', 'default', 'completed', '{{}}', now(), 3, now() "
                "FROM generate_series(1, 20000) g"
            ).format(schema)
        )
        conn.execute(sql.SQL("ANALYZE {}.jobs").format(schema))
        backend.enqueue_many([new_job() for _ in range(5)])
        with conn.transaction():
            plan = conn.execute(
                b"EXPLAIN " + backend.queries["claim"].encode(),
                CLAIM_PARAMS,
            ).fetchall()
    text = "\n".join(row[0] for row in plan)
    assert "jobs_claim" in text and "Seq Scan on jobs" not in text, text
    assert len(backend.claim(ClaimRequest(("default",), 10, 30, "w"))) == 5


def test_pooled_sessions_reuse_generic_plans_without_jit(backend: PostgresBackend) -> None:
    with backend._conn() as conn:
        settings = conn.execute(
            "SELECT current_setting('plan_cache_mode'), current_setting('jit')"
        ).fetchone()
    assert settings == ("force_generic_plan", "off")


def test_url_options_are_parsed_and_stripped_before_libpq() -> None:
    opts = parse_postgres_url(
        "postgresql://u:secret@db:5433/app?schema=jobs_v2&pool_max=4&pool_min=2&sslmode=disable&listen=off"
    )
    assert (opts.schema, opts.pool_min, opts.pool_max, opts.listen) == ("jobs_v2", 2, 4, False)
    assert "schema" not in opts.conninfo and "pool_max" not in opts.conninfo
    assert "sslmode=disable" in opts.conninfo and "connect_timeout=5" in opts.conninfo
    assert opts.channel == "conveyor.jobs_v2"
    assert parse_postgres_url("postgres://localhost/app").schema == "conveyor"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("schema=bad-name", "invalid schema name"),
        ("schema=1abc", "invalid schema name"),
        ('schema=x";drop', "invalid schema name"),
        ("pool_max=0", "pool_max"),
        ("pool_min=5&pool_max=2", "pool_max"),
        ("pool_timeout=never", "pool_timeout"),
        ("worker_commit=maybe", "worker_commit"),
        ("shema=typo", "bad PostgreSQL URL"),
    ],
)
def test_bad_urls_are_refused_naming_the_problem(query: str, message: str) -> None:
    with pytest.raises(BadURL, match=message) as info:
        PostgresBackend(f"postgresql://u:secret@localhost/app?{query}")
    assert "secret" not in str(info.value), "passwords never appear in messages"
    with pytest.raises(BadURL, match=message) as info:
        PostgresBackend(f"postgresql://u@localhost/app?password=hunter2&{query}")
    assert "hunter2" not in str(info.value)
