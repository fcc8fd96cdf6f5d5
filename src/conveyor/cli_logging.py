"""Log lines of long-running commands (worker, serve): local time with its zone, or JSON.

People read local time with the zone named; ``--json`` gives one JSON object per record
with the time in ISO-8601 UTC, for log shippers.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported only for a terminal's handler: a supervised worker never needs it
    from rich.text import Text


def local_time(value: datetime | None, *, millis: bool = False) -> str:
    """A time for people: local time with its zone (``2024-05-01 09:30:00 EDT``).

    A naive ``value`` is taken as local time; ``millis`` adds milliseconds (for log lines).
    """
    if value is None:
        return "-"
    local = value.astimezone()
    zone = local.strftime("%Z") or local.strftime("%z")
    fraction = f".{local.microsecond // 1000:03d}" if millis else ""
    return f"{local:%Y-%m-%d %H:%M:%S}{fraction} {zone}"


class LocalTimeFormatter(logging.Formatter):
    """``2024-05-01 09:30:00.123 EDT WARNING conveyor.worker: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        #: The last whole second formatted, and its date-time and zone: a busy worker logs a line
        #: per job, many within one second, and only the milliseconds change between them.
        self._second: tuple[int, str, str] = (-1, "", "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """The record's time in local time, with milliseconds and the zone."""
        # Split as datetime.fromtimestamp does (microseconds rounded half-even), so the text is the same.
        fraction, whole = math.modf(record.created)
        second, micros = int(whole), round(fraction * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        cached = self._second
        if cached[0] != second:
            local = datetime.fromtimestamp(second, UTC).astimezone()
            zone = local.strftime("%Z") or local.strftime("%z")
            cached = self._second = (second, f"{local:%Y-%m-%d %H:%M:%S}", zone)
        return f"{cached[1]}.{micros // 1000:03d} {cached[2]}"


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, ``traceback``.

    A worker's line per attempt outcome also carries its fields (``task, id, queue,
    attempt, max_attempts, outcome, duration``) under ``job``, for log shippers.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        fields = getattr(record, "attempt_outcome", None)
        if fields is not None:
            data["job"] = fields
        return json.dumps(data, default=str)


def _rich_time(moment: datetime) -> Text:
    from rich.text import Text

    return Text(local_time(moment))


def setup_logging(level: str, *, as_json: bool = False) -> None:
    """Log to stderr at ``level``: JSON lines, rich on a terminal, plain lines otherwise."""
    handler: logging.Handler
    if as_json:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLogFormatter())
    elif sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False, log_time_format=_rich_time)
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(LocalTimeFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
