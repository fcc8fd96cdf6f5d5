"""The app's background work, written with Django's own ``@task``."""

from django.tasks import task


@task()
def send_welcome(email: str) -> str:
    """Pretend to send a welcome email; the return value is the task's result."""
    return f"welcome mail sent to {email}"
