"""Django settings for the Conveyor backend tests: Conveyor URL and Django database from the environment."""

import os

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DJANGO_TEST_DB"]}}
TASKS = {
    "default": {
        "BACKEND": "conveyor.contrib.django.ConveyorBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {"url": os.environ["CONVEYOR_URL"], "lease": 2.0},
    }
}
