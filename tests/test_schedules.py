"""When schedule ticks fall (cron in a zone, DST included, or every N seconds) and which run.

Pure computation with fixed clocks: no backend, no waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor.errors import InvalidSchedule
from conveyor.schedules import Timing, plan_firing

BERLIN = ZoneInfo("Europe/Berlin")


def at(*fields: int, fold: int = 0) -> float:
    return datetime(*fields, tzinfo=BERLIN, fold=fold).timestamp()  # type: ignore[misc]


def berlin(ts: float) -> str:
    return datetime.fromtimestamp(ts, BERLIN).isoformat()


NIGHTLY = Timing.checked(cron="30 2 * * *", tz="Europe/Berlin")


def test_spring_forward_runs_the_missing_half_past_two_once() -> None:
    # 2026-03-29: clocks jump from 02:00 to 03:00 in Berlin, so 02:30 does not exist.
    ticks = []
    moment = at(2026, 3, 27, 12, 0)
    for _ in range(4):
        moment = NIGHTLY.next_tick(moment)
        ticks.append(berlin(moment))
    assert ticks == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # once, right after the gap, as cron does
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_fall_back_runs_half_past_two_once() -> None:
    # 2026-10-25: clocks go back from 03:00 to 02:00, so 02:30 happens twice.
    ticks = []
    moment = at(2026, 10, 23, 12, 0)
    for _ in range(4):
        moment = NIGHTLY.next_tick(moment)
        ticks.append(berlin(moment))
    assert ticks == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # the first 02:30 (summer time) only
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_fall_back_second_hour_never_brings_back_a_past_tick() -> None:
    # Asked from inside the repeated hour (02:15 winter time, after the summer-time 02:30 ran),
    # the next tick is the next day's, not the 02:30 that already passed.
    inside_repeat = at(2026, 10, 25, 2, 15, fold=1)
    assert inside_repeat > at(2026, 10, 25, 2, 30, fold=0)
    assert berlin(NIGHTLY.next_tick(inside_repeat)) == "2026-10-26T02:30:00+01:00"
    assert berlin(NIGHTLY.latest_tick(inside_repeat)) == "2026-10-25T02:30:00+02:00"


def test_a_scheduler_over_the_fall_back_night_enqueues_one_job() -> None:
    # A scheduler looking every minute through the whole night of 2026-10-25.
    next_run_at = NIGHTLY.next_tick(at(2026, 10, 25, 0, 0))
    fired: list[float] = []
    now = at(2026, 10, 25, 0, 0)
    while now < at(2026, 10, 25, 6, 0):
        plan = plan_firing(NIGHTLY, next_run_at, now, now - 60, "latest")
        if plan is not None:
            fired.extend(plan.ticks)
            next_run_at = plan.next_run_at
        now += 60
    assert [berlin(t) for t in fired] == ["2026-10-25T02:30:00+02:00"]


def test_every_ticks_on_whole_multiples_of_the_period() -> None:
    every = Timing.checked(every=timedelta(seconds=30))
    assert every.next_tick(1000.0) == 1020.0 and every.next_tick(1020.0) == 1050.0
    assert every.latest_tick(1049.9) == 1020.0 and every.latest_tick(1050.0) == 1050.0
    assert list(every.ticks(1020.0, 1080.0)) == [1020.0, 1050.0, 1080.0]


def test_late_ticks_all_run_missed_ones_collapse_or_are_skipped() -> None:
    every = Timing.checked(every=1)
    # Looked at 100.5 last time; now 103.2: ticks 101, 102 and 103 are late, all run.
    plan = plan_firing(every, 101.0, 103.2, 100.5, "skip")
    assert plan is not None and plan.ticks == (101.0, 102.0, 103.0) and plan.next_run_at == 104.0
    # Nobody looked since 95 (a fresh scheduler started at 100): 95..100 were missed.
    latest = plan_firing(every, 95.0, 100.5, 100.0, "latest")
    assert latest is not None and latest.ticks == (100.0,) and latest.next_run_at == 101.0
    skip = plan_firing(every, 95.0, 100.5, 100.0, "skip")
    assert skip is not None and skip.ticks == () and skip.next_run_at == 101.0
    assert plan_firing(every, 105.0, 104.9, 104.0, "latest") is None, "nothing due yet"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "* * *"}, "invalid cron expression"),
        ({"cron": "0 25 * * *"}, "invalid cron expression"),
        ({"cron": "0 2 * * *", "tz": "Europe/Nowhere"}, "unknown time zone 'Europe/Nowhere'"),
        ({"cron": "0 2 * * *", "tz": ""}, "unknown time zone"),
        ({"every": 0.5}, "every must be from 1"),
        ({"every": "5"}, "every must be seconds or a timedelta"),
        ({"every": 5, "cron": "* * * * *"}, "exactly one of"),
    ],
)
def test_bad_timings_are_refused_with_the_value_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSchedule, match=message):
        Timing.checked(**options)


def test_utc_is_the_default_zone() -> None:
    daily = Timing.checked(cron="0 2 * * *")
    assert daily.tz == "UTC"
    start = datetime(2026, 3, 28, 12, tzinfo=UTC).timestamp()
    assert datetime.fromtimestamp(daily.next_tick(start), UTC).isoformat() == "2026-03-29T02:00:00+00:00"
