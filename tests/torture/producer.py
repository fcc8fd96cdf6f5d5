"""A producer process: ``python -m torture.producer URL OUT COUNT [--key K] [--at T]``.

Enqueues COUNT ``step`` jobs one at a time (each its own transaction), or, with
``--key``, one job with that idempotency key, starting at the POSIX time T (a
barrier shared by many producers). Each accepted id is appended to OUT as it
returns; any error is printed and the exit status is 1 (so a ``database is
locked`` surfacing to a producer fails the scenario).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

import conveyor


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("count", type=int)
    parser.add_argument("--key")
    parser.add_argument("--at", type=float, default=0.0)
    options = parser.parse_args()
    app = conveyor.App(options.url)
    app.declare("step", max_attempts=100)
    fd = os.open(options.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    time.sleep(max(0.0, options.at - time.time()))
    try:
        for i in range(options.count):
            job = app.enqueue("step", args=[i], key=options.key)
            os.write(fd, f"{job.id}\n".encode())
    except Exception:  # noqa: BLE001 - any error is the scenario failing: print it
        traceback.print_exc()
        return 1
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
