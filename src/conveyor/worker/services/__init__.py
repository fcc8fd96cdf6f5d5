"""A worker's periodic services, each a small class on the ``PeriodicService`` base.

A new service is a subclass with a ``name`` and a ``run_once``, and one entry in
the Worker's ``services`` tuple.
"""

from .base import PeriodicService
from .heartbeat import Heartbeat
from .metrics import MetricsService
from .progress import ProgressWriter
from .reaper import Reaper
from .registry import WorkerRegistry

__all__ = ["Heartbeat", "MetricsService", "PeriodicService", "ProgressWriter", "Reaper", "WorkerRegistry"]
