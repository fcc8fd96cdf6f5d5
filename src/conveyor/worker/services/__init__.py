"""A worker's periodic services, each a small class on the ``PeriodicService`` base.

A new service is a subclass with a ``name`` and a ``run_once``, and one entry in
the Worker's ``services`` tuple.
"""

from .alerter import Alerter
from .base import PeriodicService
from .heartbeat import Heartbeat
from .metrics import MetricsService
from .progress import ProgressWriter
from .pruner import Pruner
from .reaper import Reaper
from .registry import WorkerRegistry
from .scheduler import Scheduler

__all__ = [
    "Alerter",
    "Heartbeat",
    "MetricsService",
    "PeriodicService",
    "ProgressWriter",
    "Pruner",
    "Reaper",
    "Scheduler",
    "WorkerRegistry",
]
