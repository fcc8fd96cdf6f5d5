"""The App the start-up benchmark's workers load: one task that marks when it started."""

from __future__ import annotations

import os
import time

import conveyor

MARK_TASK = "mark"


def make_app(url: str | None) -> conveyor.App:
    """An App with the ``mark`` task, on ``url``."""
    made = conveyor.App(url)

    @made.task(name=MARK_TASK)
    def mark(path: str) -> None:
        """Write this moment (``time.time()``) to ``path``: the job has started."""
        with open(path + ".tmp", "w") as out:
            out.write(repr(time.time()))
        os.replace(path + ".tmp", path)

    return made


app = make_app(os.environ.get("CONVEYOR_URL"))
