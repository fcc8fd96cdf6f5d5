"""Finding the system's Chromium for the dashboard tests (Playwright never downloads one here)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: Set to 1 (CI does) and a missing browser fails the tests instead of skipping them.
REQUIRE_ENV = "CONVEYOR_REQUIRE_BROWSER"
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    """``CONVEYOR_CHROMIUM``, else Debian's /usr/bin/chromium, else one on PATH."""
    explicit = os.environ.get("CONVEYOR_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for candidate in CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """The Chromium path; skips loudly (or fails under CONVEYOR_REQUIRE_BROWSER=1) without one."""
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is not installed (pip install -e '.[dev]')"
    path = chromium_path()
    if reason is None and path is None:
        reason = "no Chromium found at /usr/bin/chromium (apt-get install chromium, or set CONVEYOR_CHROMIUM)"
    if reason is not None or path is None:
        message = f"BROWSER UNAVAILABLE - dashboard tests not run: {reason}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(message)
    return path
