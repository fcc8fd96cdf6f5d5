"""OpenTelemetry tracing, used only when the ``opentelemetry`` API is installed.

``pip install 'conveyor[otel]'`` adds the API; an application that configures an
SDK (a tracer provider and an exporter) then sees:

- at enqueue, the W3C ``traceparent`` of the active span stored with each job
  (:func:`current_traceparent`; the HTTP API also takes the ``traceparent``
  header of the request that enqueues, OpenTelemetry installed or not);
- per attempt, a span ``process <task>`` of kind CONSUMER, the child of the
  stored context, with the messaging semantic-convention attributes, the job's
  id, queue, attempt and outcome, and the exception recorded on failure
  (:class:`ConsumerSpan`);
- on ``conveyor.http`` requests, a ``traceparent`` header (:func:`outgoing_headers`).

Without the API nothing here imports it: :func:`available` looks the package up
once (``importlib.util.find_spec``, which does not import it) and every entry
point returns at once when it is missing. With the API but no tracer provider
configured (:func:`recording`), spans would be non-recording no-ops: a worker then
starts none, and an attempt keeps the trace id of the traceparent stored with its
job (what the no-op span would have carried) without loading OpenTelemetry.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

#: A W3C traceparent: version 00, a non-zero trace id and span id, flags.
TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")

#: The ``messaging.system`` attribute of Conveyor's spans.
MESSAGING_SYSTEM = "conveyor"

_available: bool | None = None
_tracer: Any = None  # the API's proxy tracer: it follows a provider configured later
#: A traceparent the caller received (the HTTP API's request header), used at enqueue
#: when no OpenTelemetry span is active.
_incoming: ContextVar[str | None] = ContextVar("conveyor_incoming_traceparent", default=None)


def available() -> bool:
    """True when the OpenTelemetry API can be imported (looked up once, without importing it)."""
    global _available
    if _available is None:
        try:
            # The top-level name: looking up a submodule would import its package.
            _available = importlib.util.find_spec("opentelemetry") is not None
        except (ImportError, ValueError):
            _available = False
    return _available


#: The API's variable naming a tracer provider to load on first use (a configuration without code).
PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"


def recording() -> bool:
    """True when spans can be recorded: the API is installed and a tracer provider is configured.

    Cheap enough to ask per job: a provider is set by code that imported the API
    (``trace.set_tracer_provider``, auto-instrumentation) or named in the environment,
    and it may be set after the worker started, so the answer is not cached.
    """
    if not available():
        return False
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return PROVIDER_ENV in os.environ
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def valid_traceparent(value: object) -> str | None:
    """``value`` if it is a W3C traceparent Conveyor stores, else None (lower-cased, trimmed)."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if TRACEPARENT.fullmatch(text) else None


@contextmanager
def incoming(traceparent: str | None) -> Iterator[None]:
    """Within the block, jobs enqueued outside an active span take ``traceparent`` (if valid)."""
    token = _incoming.set(valid_traceparent(traceparent))
    try:
        yield
    finally:
        _incoming.reset(token)


def current_traceparent() -> str | None:
    """The traceparent to store with a job enqueued now: the active span's, else the incoming one."""
    if available():
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    return _incoming.get()


class ConsumerSpan:
    """The span of one attempt: started before the task runs, ended when its outcome is decided.

    ``activate()`` makes it current in the thread or task that runs the job, so spans
    the task starts are its children. ``end(outcome, error)`` sets the outcome,
    records the exception and ends it; it may run on another thread (a timeout).
    """

    __slots__ = ("span", "trace_id")

    span: Any
    trace_id: str | None

    def __init__(self, span: Any) -> None:
        self.span = span
        context = span.get_span_context()
        #: The trace id as stored in the attempt record (None for a non-recording no-op span).
        self.trace_id: str | None = f"{context.trace_id:032x}" if context.is_valid else None

    def activate(self) -> AbstractContextManager[object]:
        """The span is current inside the block (and not ended by leaving it)."""
        from opentelemetry import trace

        return trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def end(self, outcome: str, error: BaseException | None) -> None:
        """Record how the attempt ended and end the span."""
        from opentelemetry.trace import Status, StatusCode

        span = self.span
        span.set_attribute("conveyor.job.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            span.set_attribute("error.type", type(error).__qualname__)
            if outcome in ("failed", "retry"):
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {error}"[:200]))
        span.end()


class StoredTrace(ConsumerSpan):
    """Stands in for a span nothing would record: carries the stored trace, starts and ends nothing.

    What a no-op tracer's span would have given the attempt (its parent's trace id in
    the attempt record, its parent's context for jobs the task enqueues), without
    loading OpenTelemetry or building a context per job.
    """

    __slots__ = ("traceparent",)

    traceparent: str

    def __init__(self, traceparent: str) -> None:
        self.span = None
        self.traceparent = traceparent
        self.trace_id = traceparent[3:35]

    def activate(self) -> AbstractContextManager[object]:
        """The stored traceparent is the incoming one inside the block: jobs enqueued there inherit it."""
        return incoming(self.traceparent)

    def end(self, outcome: str, error: BaseException | None) -> None:
        """Nothing to end."""


def start_consumer_span(
    task: str, job_id: str, queue: str, attempt: int, max_attempts: int, traceparent: str | None
) -> ConsumerSpan | None:
    """The CONSUMER span ``process <task>`` of one attempt, child of the stored context.

    None without OpenTelemetry. With the API but no tracer provider configured, no span
    is started: a job with a stored traceparent gets a :class:`StoredTrace`, one without None.
    """
    if not recording():
        if traceparent is None or not available():
            return None
        stored = valid_traceparent(traceparent)
        return None if stored is None else StoredTrace(stored)
    from opentelemetry import trace

    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("conveyor")
    span = _tracer.start_span(
        f"process {task}",
        context=None if traceparent is None else _parent(traceparent),
        kind=trace.SpanKind.CONSUMER,
        # The messaging conventions name the job (message id) and its queue (destination);
        # the task is in the span's name. Few attributes: each costs a validation per span.
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": job_id,
            "conveyor.job.attempt": attempt,
            "conveyor.job.max_attempts": max_attempts,
        },
    )
    return ConsumerSpan(span)


def _parent(traceparent: str) -> Any:
    """The context of a stored traceparent, built directly (None if it is malformed).

    The same as the W3C propagator's ``extract`` at a third of its cost: what Conveyor
    stores was checked at enqueue, so only a value written around it can be malformed.
    """
    from opentelemetry import trace

    if valid_traceparent(traceparent) is None:
        return None
    remote = trace.SpanContext(
        trace_id=int(traceparent[3:35], 16),
        span_id=int(traceparent[36:52], 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(int(traceparent[53:55], 16)),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(remote))


def outgoing_headers(stored_traceparent: str | None) -> dict[str, str]:
    """Trace headers for an outgoing request: the active span's, else the job's stored traceparent."""
    if available():
        from opentelemetry.propagate import inject

        carrier: dict[str, str] = {}
        inject(carrier)
        if carrier.get("traceparent"):
            return carrier
    return {"traceparent": stored_traceparent} if stored_traceparent else {}
