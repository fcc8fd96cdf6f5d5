"""Failure alerts: what makes an alert valid, and the notification its alerter POSTs.

Pure computation, no I/O: the alerter service (``worker/services/alerter.py``)
counts the jobs that entered ``failed`` within an alert's window and, past the
threshold, stores a signed ``conveyor.http`` job with :func:`notification` as its
body, stamping the alert in the same atomic step so it fires at most once per
window however many workers run the alerter.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Final

from .backends.base import AlertRecord, AlertSpec, FailureCount, from_ts
from .builder import check_name, check_url
from .durations import parse_duration
from .errors import InvalidAlert

#: The longest window an alert counts over (the Redis backend keeps failures this long).
MAX_WINDOW: Final = 7 * 86400.0
#: Job ids a notification lists at most (the newest).
MAX_JOB_IDS: Final = 20


def check_window(window: object) -> float:
    """An alert window: seconds, a timedelta or a duration such as ``"5m"``, up to 7 days."""
    if isinstance(window, timedelta):
        seconds: object = window.total_seconds()
    elif isinstance(window, str):
        try:
            seconds = parse_duration(window)
        except ValueError as exc:
            raise InvalidAlert(f"window: {exc}") from None
    else:
        seconds = window
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise InvalidAlert(f"window must be a duration such as '5m', seconds or a timedelta, got {window!r}")
    if not 0 < seconds <= MAX_WINDOW:
        raise InvalidAlert(f"window must be more than 0 and at most 7 days, got {window!r}")
    return float(seconds)


def check_alert(name: object, url: object, threshold: object, window: object, queue: object) -> AlertSpec:
    """An AlertSpec from user input, every field checked; InvalidAlert names the bad one."""
    try:
        checked_name = check_name("alert", name)
        checked_url = check_url(url, "url")
        checked_queue = None if queue is None else check_name("queue", queue)
    except ValueError as exc:
        raise InvalidAlert(str(exc)) from None
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= 1_000_000:
        raise InvalidAlert(f"threshold must be an int from 1 to 1000000 failed jobs, got {threshold!r}")
    return AlertSpec(checked_name, checked_url, threshold, check_window(window), checked_queue)


def window_text(seconds: float) -> str:
    """A window as people write it: ``300`` -> ``5m``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def notification(spec: AlertSpec, failures: FailureCount) -> dict[str, Any]:
    """The JSON body POSTed when ``spec`` fires: ``{alert, queue, failed, window, job_ids, text}``.

    ``text`` makes Slack-style incoming webhooks accept the body as it is.
    """
    where = f"queue {spec.queue}" if spec.queue else "all queues"
    window = window_text(spec.window)
    text = (
        f"Conveyor alert {spec.name}: {failures.count} job(s) failed in the last {window} on {where} "
        f"(threshold {spec.threshold})."
    )
    return {
        "alert": spec.name,
        "queue": spec.queue,
        "failed": failures.count,
        "window": window,
        "job_ids": list(failures.job_ids[:MAX_JOB_IDS]),
        "text": text,
    }


def describe(record: AlertRecord) -> dict[str, Any]:
    """The JSON shape of one alert (``app.alerts()``, ``GET /api/alerts``)."""
    fired = from_ts(record.last_fired_at)
    spec = record.spec
    return {
        "name": spec.name,
        "url": spec.url,
        "threshold": spec.threshold,
        "window": window_text(spec.window),
        "window_seconds": spec.window,
        "queue": spec.queue,
        "last_fired_at": None if fired is None else fired.isoformat(),
    }
