"""Settings of the example project: Django's Tasks framework on Conveyor."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-please-change"
DEBUG = True
USE_TZ = True
INSTALLED_APPS = ["welcome"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "django.db"}}

# Django's @task functions are stored by Conveyor and run by `conveyor worker
# conveyor.contrib.django:app`. CONVEYOR_URL picks PostgreSQL or Redis instead of SQLite.
TASKS = {
    "default": {
        "BACKEND": "conveyor.contrib.django.ConveyorBackend",
        "QUEUES": ["default"],
        "OPTIONS": {"url": os.environ.get("CONVEYOR_URL", f"sqlite:///{BASE_DIR / 'conveyor.db'}")},
    }
}
