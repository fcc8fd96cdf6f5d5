"""The run-time: fetch loop, executor, completer, periodic services, graceful shutdown, processes."""

from .runner import BatchResult, Worker

__all__ = ["BatchResult", "Worker"]
