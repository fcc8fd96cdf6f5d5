"""A worker's periodic services, each a small class on the ``PeriodicService`` base.

A new service is a subclass with a ``name`` and a ``run_once``, and one entry in
the Worker's ``services`` tuple.
"""

from .alerter import Alerter
from .base import PeriodicService
from .heartbeat import Heartbeat
from .pruner import Pruner
from .reaper import Reaper
from .scheduler import Scheduler

__all__ = ["Alerter", "Heartbeat", "PeriodicService", "Pruner", "Reaper", "Scheduler"]
