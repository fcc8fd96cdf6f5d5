"""Run one session of one system and print its result as one JSON line.

    python -m bench.peers.driver SYSTEM SESSION [--sizes JSON]

Runs in the system's own interpreter (the peers venv for peers, the main venv for
Conveyor), in a fresh namespace that it removes afterwards. ``--describe``
prints the system's versions and configuration instead of running anything.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from .base import Adapter, make_tag
from .harness import SESSIONS, WorkloadFailed
from .systems import SYSTEMS

DEFAULT_SIZES: dict[str, Any] = {
    "drain": 20000,
    "latency": 500,
    "latency_rate": 100,
    "io": 10000,
    "retry": 2000,
    "cap_s": None,
}


def load_adapter(system: str) -> Adapter:
    """Import the system's adapter module (after the namespace is in the environment)."""
    module = importlib.import_module(SYSTEMS[system].module)
    adapter: Adapter = module.make_adapter(system)
    return adapter


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the session, print one JSON line; exit 0 even when the workload failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("session", nargs="?", choices=sorted(SESSIONS), default="throughput")
    parser.add_argument("--sizes", default="{}", help="JSON overriding " + json.dumps(DEFAULT_SIZES))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--describe", action="store_true", help="print versions and configuration only")
    parser.add_argument("--tag", help="the session's namespace (default: made from system, session and pid)")
    args = parser.parse_args(argv)
    sizes = {**DEFAULT_SIZES, **json.loads(args.sizes)}
    system = SYSTEMS[args.system]

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{args.system}-"))
    out = tmp / "out"
    out.mkdir()
    os.environ.update(
        {
            "BENCH_TAG": args.tag or make_tag("bench", args.system, args.session, str(os.getpid())),
            "BENCH_OUT": str(out),
            "BENCH_REDIS_URL": args.redis_url,
            "BENCH_PG_DSN": args.pg_dsn,
            "BENCH_SYSTEM": args.system,
            "BENCH_ENGINE": system.engine,
        }
    )
    report: dict[str, Any] = {"system": args.system, "session": args.session}
    started = time.monotonic()
    keep = False
    try:
        adapter = load_adapter(args.system)
        if args.describe:
            report["describe"] = adapter.describe()
        else:
            try:  # a setup that fails half-way has created storage too: teardown removes it
                adapter.setup()
                report["result"] = SESSIONS[args.session](adapter, sizes)
            finally:
                adapter.teardown()
    except WorkloadFailed as exc:
        report["error"] = str(exc)
        keep = True
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which carries on
        report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        keep = True
    report["elapsed_s"] = round(time.monotonic() - started, 2)
    if keep and os.environ.get("BENCH_KEEP_FAILED"):
        report["kept"] = str(tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
