"""``conveyor demo``: a realistic run on the embedded default, in well under a minute.

A web shop's background work arrives in a burst: welcome emails (some hit a
flaky mail server and recover on retry), card charges (a declined card fails
for good), CRM syncs (one contact's sync keeps timing out until its attempts
are spent) and async report builds. A worker drains it with a progress bar;
then a person fixes the declined charge and replays it from the failure table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path

from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .app import App
from .backoff import exponential
from .errors import Permanent
from .render import console, jobs_table, stats_table
from .worker import Worker

#: The demo's own file, recreated on every run.
DEFAULT_PATH = "conveyor-demo.db"


def build_app(url: str) -> App:
    """The demo's tasks, on a fresh App."""
    app = App(url, lease=10)
    fast_retries = exponential(base=0.2, cap=1.0)
    seen: set[int] = set()
    lock = threading.Lock()

    @app.task(queue="emails", max_attempts=4, backoff=fast_retries)
    def send_welcome_email(user_id: int, email: str) -> str:
        time.sleep(random.uniform(0.005, 0.03))  # talking to the mail server
        with lock:
            first_try = user_id not in seen
            seen.add(user_id)
        if user_id % 5 == 0 and first_try:
            raise ConnectionError("421 mail server busy, try again later")
        return f"welcome email sent to {email}"

    @app.task(queue="payments", max_attempts=3, backoff=fast_retries)
    def charge_card(order_id: int, amount_cents: int) -> dict[str, int | str]:
        time.sleep(random.uniform(0.01, 0.04))
        if amount_cents > 90_000:
            raise Permanent(f"card declined for order {order_id}: amount over the card's limit")
        return {"order_id": order_id, "charged": amount_cents, "status": "paid"}

    @app.task(queue="crm", max_attempts=3, backoff=fast_retries)
    def sync_crm(contact_id: int) -> str:
        time.sleep(random.uniform(0.005, 0.02))
        if contact_id == 3:
            raise TimeoutError("CRM API did not answer within 5s")
        return f"contact {contact_id} synced"

    @app.task(queue="reports")
    async def build_report(account: str) -> dict[str, str]:
        await asyncio.sleep(random.uniform(0.02, 0.08))
        return {"account": account, "report": f"/reports/{account}.pdf"}

    return app


def enqueue_burst(app: App, job_count: int) -> int:
    """What a busy minute of a web shop hands to the queue; returns how many jobs."""
    quarter = max(1, job_count // 4)
    items: list[dict[str, object]] = []
    for i in range(quarter):
        items.append({"task": "send_welcome_email", "args": [i, f"user{i}@example.com"]})
        amount = 120_000 if i % 37 == 1 else 1_000 + 17 * i
        items.append({"task": "charge_card", "args": [5000 + i, amount], "key": f"order:{5000 + i}"})
        items.append({"task": "sync_crm", "args": [i]})
        items.append({"task": "build_report", "args": [f"acct-{i}"], "priority": 5 if i < 5 else 0})
    app.enqueue_many(items)
    # A double-click on "pay": the idempotency key absorbs the duplicate.
    app.enqueue("charge_card", args=[5000, 1_000], key="order:5000")
    return len(items)


def conveyor_command() -> str:
    """How to type ``conveyor`` here: the bare name only when PATH finds this installation's.

    After ``make demo`` the virtualenv is not active, so a bare ``conveyor`` would be
    "command not found": then the script's path (``.venv/bin/conveyor``) is given instead.
    """
    script = Path(sys.executable).parent / "conveyor"
    if not script.exists():
        return f"{sys.executable} -m conveyor"
    found = shutil.which("conveyor")
    if found is not None and Path(found).resolve() == script.resolve():
        return "conveyor"
    relative = os.path.relpath(script, Path.cwd())
    return relative if not relative.startswith("..") else str(script)


def run_demo(job_count: int = 240, path: str | None = None) -> None:
    """Run the scenario and print the stats and the failure table."""
    out = console()
    database = Path(path or DEFAULT_PATH).resolve()
    if database.exists() and path is not None:
        raise ValueError(f"{path} exists; the demo wants a fresh file")
    for suffix in ("", "-wal", "-shm"):  # the demo's own default file: start afresh
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    app = build_app(url)
    # The worker's log lines (retries, failures) scroll above the progress bar.
    handler = RichHandler(console=out, show_path=False, show_level=False, markup=False)
    conveyor_log = logging.getLogger("conveyor")
    conveyor_log.addHandler(handler)
    conveyor_log.setLevel(logging.WARNING)
    try:
        out.print(f"[bold]Conveyor demo[/bold] on [cyan]{url}[/cyan]")
        started = time.monotonic()
        total = enqueue_burst(app, job_count)
        out.print(f"enqueued {total} jobs in {1000 * (time.monotonic() - started):.0f} ms (one round trip)")
        queues = ["emails", "payments", "crm", "reports"]
        worker = Worker(app, queues=queues, concurrency=10, install_signal_handlers=False)
        thread = threading.Thread(target=worker.run, name="demo-worker", daemon=True)
        thread.start()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=out) as progress:
            bar = progress.add_task("draining", total=total)
            deadline = time.monotonic() + 120
            while True:
                counts = app.stats()["counts"]
                finished = counts["completed"] + counts["failed"] + counts["cancelled"]
                progress.update(
                    bar,
                    completed=finished,
                    description=f"draining ({counts['retry']} waiting to retry, {counts['failed']} failed)",
                )
                if finished >= total:
                    break
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError(f"the demo's worker did not drain the queue: {counts}")
                time.sleep(0.1)
        failed = app.jobs(status="failed", limit=20)
        out.print(jobs_table(failed.items, "Failure table", failed.total))
        declined = next((job for job in failed if job.task == "charge_card"), None)
        if declined is not None:
            out.print(
                f"\nThe customer raised their card limit: replaying order {declined.args[0]} "
                "from the failure table with a corrected amount..."
            )
            job = app.resubmit(declined.id, args=[declined.args[0], 50_000])
            out.print(f"replayed job {job.id}: [green]{job.result(timeout=30)}[/green]")
        worker.stop()
        thread.join(30)
        out.print()
        out.print(stats_table(app.stats()))
        failed = app.jobs(status="failed", limit=20)
        out.print(jobs_table(failed.items, "Failure table (what still needs a person)", failed.total))
        out.print(f"\ndone in {time.monotonic() - started:.1f}s. Look around:")
        out.print(f"  {conveyor_command()} jobs list --status failed --url {url}", markup=False)
    finally:
        conveyor_log.removeHandler(handler)
        app.close()
