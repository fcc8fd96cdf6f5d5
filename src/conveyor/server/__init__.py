"""The HTTP API, /metrics and the dashboard (``conveyor serve``): Starlette served by uvicorn."""

from .application import create_app
from .run import run_server

__all__ = ["create_app", "run_server"]
