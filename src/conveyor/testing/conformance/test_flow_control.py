"""Flow control: queue and group limits inside the claim, fairness, pause, settings (every backend)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

import conveyor
from conveyor.backends.base import ClaimedJob, ClaimRequest, Outcome
from conveyor.testing.helpers import running_worker, wait_for


def claim(app: conveyor.App, n: int, queue: str = "default", lease: float = 30.0) -> list[ClaimedJob]:
    return app.backend.claim(ClaimRequest((queue,), n, lease, "w"))


def finish(app: conveyor.App, jobs: list[ClaimedJob]) -> None:
    now = time.time()
    outcomes = [Outcome(j.id, j.lease_token, "completed", j.attempt, "w", now, now, "null") for j in jobs]
    assert all(app.backend.finish_many(outcomes))


def processing(app: conveyor.App, queue: str = "default") -> int:
    return int(app.stats()["queues"].get(queue, {}).get("processing", 0))


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end at t closes before a start at t)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    peak = level = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


# -- settings ---------------------------------------------------------------------------------
def test_configure_queue_stores_settings_and_queues_lists_them(app: conveyor.App) -> None:
    @app.task(queue="emails")
    def send() -> None: ...

    send.enqueue()
    shown = app.configure_queue(
        "emails", concurrency=10, rate_limit="100/m", group_concurrency=2, group_rate_limit="5/10s"
    )
    assert shown["concurrency"] == 10 and shown["rate_limit"] == "100/m"
    assert shown["group_concurrency"] == 2 and shown["group_rate_limit"] == "5/10s"
    assert shown["paused"] is False and shown["counts"]["pending"] == 1
    app.configure_queue("emails", rate_limit=None)
    (queue,) = [q for q in app.queues() if q["name"] == "emails"]
    assert queue["rate_limit"] is None and queue["concurrency"] == 10, "others unchanged"
    assert {
        "name",
        "paused",
        "concurrency",
        "rate_limit",
        "group_concurrency",
        "group_rate_limit",
        "counts",
    } <= set(queue)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"rate_limit": "ten/s"}, "'ten/s'"),
        ({"rate_limit": "5/fortnight"}, "'5/fortnight'"),
        ({"rate_limit": "0/s"}, "'0/s'"),
        ({"concurrency": 0}, "0"),
        ({"concurrency": -3}, "-3"),
        ({"group_concurrency": 1.5}, "1.5"),
        ({"group_rate_limit": ""}, "''"),
        ({"speed": 3}, "speed"),
    ],
)
def test_bad_limits_are_refused_naming_the_value_and_change_nothing(
    app: conveyor.App, settings: dict[str, Any], named: str
) -> None:
    app.configure_queue("default", concurrency=4)
    with pytest.raises(conveyor.InvalidLimit) as caught:
        app.configure_queue("default", **{"group_rate_limit": "1/s", **settings})
    assert named in str(caught.value)
    queue = app.queue("default")
    assert queue["concurrency"] == 4 and queue["rate_limit"] is None and queue["group_rate_limit"] is None


def test_an_over_long_group_is_refused_and_nothing_is_stored(app: conveyor.App) -> None:
    @app.task()
    def work() -> None: ...

    with pytest.raises(conveyor.InvalidGroup, match="200"):
        work.options(group="x" * 201).enqueue()
    with pytest.raises(conveyor.InvalidGroup):
        work.options(group="").enqueue()
    assert app.stats()["counts"]["pending"] == 0


def test_group_comes_from_options_group_by_and_items_and_filters_listings(app: conveyor.App) -> None:
    @app.task(group_by="tenant")
    def per_tenant(tenant: str, n: int) -> None: ...

    @app.task(group_by=lambda order: f"shop-{order['shop']}")
    def per_shop(order: dict[str, int]) -> None: ...

    a = per_tenant.enqueue("acme", 1)
    b = per_tenant.enqueue(tenant="globex", n=2)
    c = per_shop.enqueue({"shop": 7})
    d = per_tenant.options(group="override").enqueue("acme", 3)
    (e,) = app.enqueue_many([{"task": "per_tenant", "args": ["x", 1], "group": "from-item"}])
    assert [j.refresh().group for j in (a, b, c, d, e)] == [
        "acme",
        "globex",
        "shop-7",
        "override",
        "from-item",
    ]
    assert app.get(a.id).to_dict()["group"] == "acme"
    assert [j.id for j in app.jobs(group="acme")] == [a.id]


# -- limits inside the claim -----------------------------------------------------------------
def test_queue_concurrency_caps_processing_jobs_and_a_finish_frees_a_slot(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work"}] * 10)
    app.configure_queue("default", concurrency=3)
    first = claim(app, 10)
    assert len(first) == 3 and claim(app, 10) == [], "the limit holds across claims"
    finish(app, first[:2])
    assert len(claim(app, 10)) == 2, "finished jobs free their slots"
    assert processing(app) == 3


def test_start_limit_keeps_a_worker_from_buffering_limited_jobs(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work"}] * 10)
    app.configure_queue("default", concurrency=8)
    taken = app.backend.claim(ClaimRequest(("default",), 10, 30.0, "w", start_limit=2))
    assert len(taken) == 2


def test_a_reaped_lease_gives_its_slot_back(app: conveyor.App) -> None:
    app.declare("work", max_attempts=5)
    app.enqueue_many([{"task": "work"}] * 3)
    app.configure_queue("default", concurrency=1)
    (held,) = claim(app, 5, lease=0.2)
    assert claim(app, 5) == []
    wait_for(lambda: app.backend.reap_expired().requeued, timeout=5)
    (again,) = claim(app, 5)
    assert processing(app) == 1, "the reaped slot was taken again, and only it"
    assert again.attempt == (2 if again.id == held.id else 1)
    assert app.get(held.id).attempts[-1].outcome == "lost"


def test_group_concurrency_one_runs_one_job_per_group_while_other_groups_run(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work", "group": g} for g in ("a", "a", "a", "b", "b", "c")])
    app.enqueue_many([{"task": "work"}] * 2)  # no group: no group limit
    app.configure_queue("default", group_concurrency=1)
    taken = claim(app, 20)
    assert Counter(j.group for j in taken) == {"a": 1, "b": 1, "c": 1, None: 2}
    assert claim(app, 20) == []
    finish(app, [j for j in taken if j.group == "a"])
    assert [j.group for j in claim(app, 20)] == ["a"]


def test_fair_claims_start_a_small_groups_jobs_before_a_big_groups_hundredth(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work", "group": "big"} for _ in range(1000)])
    app.enqueue_many([{"task": "work", "group": "small"} for _ in range(10)])
    order: list[str | None] = []
    while len(order) < 120:
        jobs = claim(app, 7)
        order.extend(j.group for j in jobs)
        finish(app, jobs)
    big_100th = [i for i, g in enumerate(order) if g == "big"][99]
    small = [i for i, g in enumerate(order) if g == "small"]
    assert len(small) == 10 and max(small) < big_100th, order[:40]


def test_a_group_returning_from_idle_does_not_jump_the_queue(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work", "group": "early"} for _ in range(3)])
    finish(app, claim(app, 3))
    app.enqueue_many([{"task": "work", "group": "busy"} for _ in range(50)])
    finish(app, claim(app, 20))
    app.enqueue_many([{"task": "work", "group": "early"} for _ in range(20)])
    groups = [j.group for j in claim(app, 10)]
    assert 3 <= groups.count("early") <= 7, groups


def test_queue_rate_limit_holds_in_every_sliding_window(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work"}] * 200)
    app.configure_queue("default", rate_limit="10/s")
    ids: list[str] = []
    deadline = time.monotonic() + 2.6
    while time.monotonic() < deadline:
        jobs = claim(app, 50)
        ids.extend(j.id for j in jobs)
        finish(app, jobs)
        time.sleep(0.01)
    starts = sorted(app.get(i).started_at.timestamp() for i in ids)  # type: ignore[union-attr]
    for i, start in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < start + 1.0)
        assert in_window <= 10, f"{in_window} starts within 1s of {start}"
    assert 25 <= len(starts) <= 30, f"{len(starts)} starts in 2.6s at 10/s"


def test_group_rate_limit_counts_each_group_on_its_own(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work", "group": g} for g in ("a", "b") for _ in range(10)])
    app.configure_queue("default", group_rate_limit="3/m")
    taken = claim(app, 20)
    finish(app, taken)
    assert Counter(j.group for j in taken) == {"a": 3, "b": 3}
    assert claim(app, 20) == []


def test_pause_stops_claims_keeps_enqueue_and_resume_restarts(app: conveyor.App) -> None:
    app.declare("work")
    app.pause_queue("default")
    app.enqueue_many([{"task": "work"}] * 3)
    assert claim(app, 5) == []
    queue = app.queue("default")
    assert queue["paused"] is True and queue["counts"]["pending"] == 3
    app.resume_queue("default")
    assert len(claim(app, 5)) == 3


def test_limit_changes_apply_from_the_next_claim(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work"}] * 10)
    app.configure_queue("default", concurrency=1)
    assert len(claim(app, 10)) == 1
    app.configure_queue("default", concurrency=4)
    assert len(claim(app, 10)) == 3
    app.configure_queue("default", concurrency=None)
    assert len(claim(app, 10)) == 6


def test_queues_shows_usage_against_the_limits(app: conveyor.App) -> None:
    app.declare("work")
    app.enqueue_many([{"task": "work", "group": g} for g in ("a", "a", "b")])
    app.configure_queue("default", concurrency=1)
    claim(app, 5)
    queue = app.queue("default")
    assert queue["processing"] == 1 and queue["throttled"] is True
    assert {g["group"]: (g["waiting"], g["processing"]) for g in queue["busiest_groups"]} in (
        {"a": (1, 1), "b": (1, 0)},
        {"a": (2, 0), "b": (0, 1)},
    )


# -- with workers --------------------------------------------------------------------------------
def _recording_task(app: conveyor.App, spans: list[tuple[str, float, float]], work: float) -> None:
    lock = threading.Lock()

    @app.task(group_by="group")
    def hold(group: str) -> None:
        start = time.monotonic()
        time.sleep(work)
        with lock:
            spans.append((group, start, time.monotonic()))


@pytest.fixture
def three_workers(app: conveyor.App) -> Iterator[list[conveyor.Worker]]:
    with ExitStack() as stack:
        yield [stack.enter_context(running_worker(app, concurrency=4)) for _ in range(3)]


def test_concurrency_limit_holds_across_three_workers(app: conveyor.App) -> None:
    spans: list[tuple[str, float, float]] = []
    _recording_task(app, spans, 0.03)
    app.configure_queue("default", concurrency=3)
    app.enqueue_many([{"task": "hold", "args": [f"g{i % 7}"]} for i in range(45)])
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(running_worker(app, concurrency=4))
        wait_for(lambda: len(spans) == 45, timeout=30)
    assert max_overlap([(s, e) for _, s, e in spans]) <= 3
    assert max_overlap([(s, e) for _, s, e in spans]) >= 2, "the limit, not the workers, bounds the work"


def test_group_concurrency_one_across_three_workers(app: conveyor.App) -> None:
    spans: list[tuple[str, float, float]] = []
    _recording_task(app, spans, 0.03)
    app.configure_queue("default", group_concurrency=1)
    app.enqueue_many([{"task": "hold", "args": [f"g{i % 4}"]} for i in range(32)])
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(running_worker(app, concurrency=4))
        wait_for(lambda: len(spans) == 32, timeout=30)
    for group in ("g0", "g1", "g2", "g3"):
        assert max_overlap([(s, e) for g, s, e in spans if g == group]) == 1, group
    assert max_overlap([(s, e) for _, s, e in spans]) >= 2, "other groups run in parallel"
