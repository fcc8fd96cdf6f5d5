"""``python -m conveyor`` is the ``conveyor`` command."""

from .cli import main

main()
