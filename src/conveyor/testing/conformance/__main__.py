"""``python -m conveyor.testing.conformance URL [pytest args]``: the suite against any backend URL.

Exits with pytest's status (0: every test passed), or 2 with one line on stderr when
the URL cannot be used or pytest is not installed.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Sequence

from ...app import App
from ...errors import ConveyorError
from . import SUITE_DIR
from .stores import isolation_for

USAGE = """usage: python -m conveyor.testing.conformance URL [pytest arguments]

Runs Conveyor's conformance suite against the backend at URL (default: $CONVEYOR_CONFORMANCE_URL),
each test on a fresh store derived from it. Arguments after URL go to pytest (-x, -q, -k EXPR, ...).
A backend Conveyor does not ship takes the placeholder {namespace} in URL where each test's
database, schema or key prefix goes.
"""


def _fail(message: str) -> int:
    print(f"conveyor.testing.conformance: {message}", file=sys.stderr)
    return 2


def check_backend(url: str) -> None:
    """Open a fresh store on ``url`` and read it once, so a bad URL fails before any test runs."""
    isolation = isolation_for(url)
    probe = isolation.url_for(url, "probe" + secrets.token_hex(4))
    app = App(probe)
    try:
        app.stats()
    finally:
        app.close()
    isolation.drop(probe)  # only once the backend answered: nothing to remove otherwise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; return pytest's exit status (2 for a URL or installation problem)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if args and not args[0].startswith("-"):
        url, pytest_args = args[0], args[1:]
    elif os.environ.get("CONVEYOR_CONFORMANCE_URL"):
        url, pytest_args = os.environ["CONVEYOR_CONFORMANCE_URL"], args
    else:
        return _fail("no backend URL given\n" + USAGE)
    try:
        import pytest
    except ImportError:
        return _fail("the conformance suite needs pytest: pip install 'conveyor[testing]'")
    try:
        check_backend(url)
    except (ConveyorError, ValueError, OSError) as exc:
        return _fail(f"cannot use backend URL {url!r}: {exc}")
    return int(
        pytest.main(
            [
                str(SUITE_DIR),
                "-p",
                "conveyor.testing.conformance.plugin",
                # The suite may live in a read-only site-packages: keep no cache beside it.
                "-p",
                "no:cacheprovider",
                f"--rootdir={SUITE_DIR}",
                f"--conveyor-url={url}",
                *pytest_args,
            ]
        )
    )


if __name__ == "__main__":
    sys.exit(main())
