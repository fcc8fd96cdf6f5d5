"""``python manage.py send_welcome EMAIL [--wait S]``: enqueue the task, optionally wait for its result."""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from welcome.tasks import send_welcome


class Command(BaseCommand):
    help = "Enqueue send_welcome for EMAIL through Django's Tasks framework (stored by Conveyor)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the result")

    def handle(self, *args: Any, email: str, wait: float, **options: Any) -> None:
        result = send_welcome.enqueue(email)
        self.stdout.write(f"enqueued {result.id} ({result.status})")
        deadline = time.monotonic() + wait
        while not result.is_finished and time.monotonic() < deadline:
            time.sleep(0.1)
            result.refresh()  # Django's API: asks the backend again
        if result.is_finished:
            self.stdout.write(f"{result.status}: {result.return_value!r}")
