"""A worker's periodic services, each a small class on the ``PeriodicService`` base.

A new service is a subclass with a ``name`` and a ``run_once``, and one entry in
the Worker's ``services`` tuple.
"""

from .base import PeriodicService
from .heartbeat import Heartbeat
from .metrics import MetricsService
from .reaper import Reaper

__all__ = ["Heartbeat", "MetricsService", "PeriodicService", "Reaper"]
