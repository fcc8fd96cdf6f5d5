"""The run-time: fetch loop, executor, completer, periodic services, graceful shutdown, processes.

``Worker`` and ``BatchResult`` are imported on first use, so the process supervisor
(``conveyor worker --processes N``) can start its children without loading the run-time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import BatchResult, Worker

__all__ = ["BatchResult", "Worker"]


def __getattr__(name: str) -> Any:
    """``Worker`` and ``BatchResult``, from the runner module on first use."""
    if name in __all__:
        from . import runner

        value = getattr(runner, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
