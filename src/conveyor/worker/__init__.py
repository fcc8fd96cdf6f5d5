"""The run-time: fetch loop, executor, heartbeat, reaper, graceful shutdown, processes."""

from .runner import BatchResult, Worker

__all__ = ["BatchResult", "Worker"]
