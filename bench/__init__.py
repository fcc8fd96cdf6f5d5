"""Conveyor's benchmark harness: ``python -m bench.run`` (``make bench``)."""
