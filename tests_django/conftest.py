"""Django is configured once per run, on a fresh Conveyor store and a fresh Django database."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
_ROOT = Path(tempfile.mkdtemp(prefix="conveyor-django-"))
os.environ.setdefault("CONVEYOR_URL", f"sqlite:///{_ROOT / 'conveyor.db'}")
os.environ.setdefault("DJANGO_TEST_DB", str(_ROOT / "django.db"))
os.environ["DJANGO_SETTINGS_MODULE"] = "djsettings"

import django  # noqa: E402

django.setup()
