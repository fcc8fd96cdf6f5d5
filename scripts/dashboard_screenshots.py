"""Screenshots of every dashboard page, light and dark, from a real run: ``make screenshots``.

Serves a fresh SQLite store with realistic jobs (a small shop: receipts, card charges,
thumbnails, an inventory sync that times out), runs them through a real Worker, and
drives the system's Chromium over every page. Writes docs/img/dashboard-*.png.

The overview's throughput chart needs an hour of finishes. The script does not wait an
hour: it runs an hour's worth of jobs for real, then moves each minute's jobs back in
time (their created, run, start and finish times and their attempt records, one UPDATE
each on the SQLite file), so the chart shows a real run spread over the past hour. A
worker thread stays up while the pictures are taken (serving a long video job), so the
workers page has a live worker with a running job.
"""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

import conveyor
from conveyor.server import create_app

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
KEY = "screenshot-key-3f9a1c7e52d8"
PORT = 8791
CHROMIUM = "/usr/bin/chromium"


class CardDeclined(Exception):
    """The card issuer said no."""


def shop(path: Path) -> conveyor.App:
    app = conveyor.App(f"sqlite:///{path}")

    @app.task(queue="mail")
    def send_receipt(order_id: str, to: str) -> dict[str, str]:
        return {"message_id": f"<{order_id}@mail.example.com>", "to": to}

    @app.task(queue="billing", max_attempts=1, permanent_on=CardDeclined)
    def charge_card(order_id: str, amount_cents: int, currency: str = "EUR") -> dict[str, object]:
        if amount_cents % 7 == 0:
            raise CardDeclined(f"card declined for order '{order_id}' (issuer code 51: insufficient funds)")
        return {"order": order_id, "charged": amount_cents, "currency": currency}

    @app.task(queue="media")
    def make_thumbnail(image_id: int, width: int = 320) -> str:
        return f"s3://thumbs/{image_id}-{width}.webp"

    @app.task(queue="sync", max_attempts=1)
    def sync_inventory(warehouse: str, sku_count: int) -> None:
        raise TimeoutError(f"warehouse API {warehouse!r} timed out after 30 s ({sku_count} SKUs pending)")

    @app.task(queue="sync", max_attempts=3)
    def refresh_prices(feed: str) -> None:
        raise ConnectionError(f"price feed {feed} refused the connection")

    @app.task(queue="reports")
    def build_report(kind: str) -> str:
        return f"s3://reports/{kind}.pdf"

    @app.task(queue="mail")
    def send_digest() -> None:
        return None

    @app.task(queue="video", timeout=3600)
    async def render_video(video_id: int) -> None:
        await asyncio.sleep(600)  # runs while the pictures are taken; released when the worker stops

    return app


def history(app: conveyor.App, path: Path) -> None:
    """An hour of receipts, thumbnails and card charges, run now, then spread over the past hour's minutes."""
    rng = random.Random(11)
    by_minute: list[list[str]] = []
    for ago in range(59, 0, -1):
        # A busy half hour in the middle of the hour, quieter at the edges, a burst of declines.
        busy = 6 + 10 * math.sin(math.pi * (60 - ago) / 60) ** 2 + rng.randint(0, 4)
        receipts = [(f"H-{ago}-{n}", f"h{n}@example.com") for n in range(int(busy))]
        ids = [app.enqueue("send_receipt", list(receipt)).id for receipt in receipts]
        ids += [app.enqueue("make_thumbnail", [70000 + ago * 10 + n]).id for n in range(rng.randint(0, 3))]
        declines = 3 if 24 <= ago <= 27 else rng.choice([0, 0, 0, 1])
        ids += [app.enqueue("charge_card", [f"H-{ago}-c{n}", 700]).id for n in range(declines)]
        ids += [app.enqueue("charge_card", [f"H-{ago}-k{n}", 1999]).id for n in range(rng.randint(0, 2))]
        by_minute.append(ids)
    worker = conveyor.Worker(app, install_signal_handlers=False, schedules=False)
    while worker.process_batch(200).to_dict()["processed"]:
        pass
    first = math.floor(time.time() / 60) * 60
    with sqlite3.connect(path) as conn:
        for ago, ids in zip(range(59, 0, -1), by_minute, strict=True):
            # In creation order, so listings (newest first, by id) read in time order too.
            times = sorted(first - ago * 60 + rng.uniform(2, 58) for _ in ids)
            for job_id, finished_at in zip(ids, times, strict=True):
                move(conn, job_id, finished_at)


def move(conn: sqlite3.Connection, job_id: str, finished_at: float) -> None:
    """Move a finished job back in time: every time it and its attempts hold, by one shift."""
    (old,) = conn.execute("SELECT finished_at FROM conveyor_jobs WHERE id = ?", (job_id,)).fetchone()
    shift = {"s": old - finished_at, "id": job_id}
    conn.execute(
        "UPDATE conveyor_attempts SET started_at = started_at - :s, finished_at = finished_at - :s"
        " WHERE job_id = :id",
        shift,
    )
    conn.execute(
        "UPDATE conveyor_jobs SET created_at = created_at - :s, run_at = run_at - :s,"
        " started_at = started_at - :s, finished_at = finished_at - :s WHERE id = :id",
        shift,
    )


def recent(app: conveyor.App, path: Path, since: float) -> None:
    """The shop's own batch finished all at once: spread it over the last few minutes."""
    rng = random.Random(5)
    first = math.floor(time.time() / 60) * 60
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT id FROM conveyor_jobs WHERE finished_at >= ? ORDER BY id", (since,))
        done = [row[0] for row in found]
        # In creation order, and never after now (a finish in the future would read "in 20 s").
        now = time.time() - 1
        times = sorted(min(first - rng.randint(0, 5) * 60 + rng.uniform(2, 58), now) for _ in done)
        for job_id, finished_at in zip(done, times, strict=True):
            move(conn, job_id, finished_at)


def settings(app: conveyor.App) -> None:
    """Limits, a paused queue, schedules and an alert: what the queues and schedules pages show."""
    app.configure_queue("billing", concurrency=4, rate_limit="120/m")
    app.configure_queue("mail", concurrency=20, group_concurrency=2, group_rate_limit="10/m")
    app.configure_queue("sync", concurrency=1)
    app.pause_queue("sync")
    app.schedule(
        "nightly-sales-report",
        task="build_report",
        cron="0 2 * * *",
        tz="Europe/Berlin",
        kwargs={"kind": "sales"},
    )
    app.schedule(
        "weekly-stock-report",
        task="build_report",
        cron="30 7 * * MON",
        tz="America/New_York",
        kwargs={"kind": "stock"},
    )
    app.schedule("digest", task="send_digest", every=900)
    app.pause_schedule("digest")
    app.run_schedule("nightly-sales-report")
    app.alert(
        "payments-on-call",
        url="https://hooks.slack.example.com/services/T000/B000/XXXX",
        threshold=10,
        window="5m",
        queue="billing",
    )
    app.alert("ops", url="https://alerts.example.net/conveyor", threshold=50, window="1h")


def grouped_mail(app: conveyor.App) -> None:
    """Receipts of three shops waiting in "mail", grouped by shop: its busiest groups."""
    for n, shop_name in enumerate(["shop-amsterdam"] * 9 + ["shop-lisbon"] * 5 + ["shop-oslo"] * 2):
        app.enqueue("send_receipt", [f"ORD-{10600 + n}", f"buyer{n}@example.com"], group=shop_name)


def fill(app: conveyor.App, path: Path) -> None:
    history(app, path)
    since = time.time()
    rng = random.Random(7)
    for n in range(1, 61):
        order = f"ORD-{10400 + n}"
        app.enqueue("send_receipt", [order, f"customer{n}@example.com"])
        app.enqueue("charge_card", [order, rng.choice([1999, 2450, 4900, 700, 12900, 350])])
    for image in range(20):
        app.enqueue("make_thumbnail", [88000 + image], {"width": rng.choice([320, 640])})
    for warehouse in ("berlin-2", "lyon-1", "leeds-3"):
        app.enqueue("sync_inventory", [warehouse, rng.randint(200, 900)])
    worker = conveyor.Worker(app, install_signal_handlers=False)
    while worker.process_batch(100).to_dict()["processed"]:
        pass
    app.enqueue("refresh_prices", ["supplier-eu"])
    worker.process_batch(10)  # one failed attempt: waits in retry
    recent(app, path, since)
    for n in range(8):
        app.enqueue("send_receipt", [f"ORD-{10500 + n}", f"late{n}@example.com"], delay=60 * (n + 1))
    app.enqueue("make_thumbnail", [89001], priority=5)
    settings(app)
    grouped_mail(app)


@contextmanager
def live_worker(app: conveyor.App) -> Iterator[conveyor.Worker]:
    """A worker thread running one long video job, listed on the workers page until it stops."""
    job = app.enqueue("render_video", [4711])
    worker = conveyor.Worker(
        app, queues=["video"], concurrency=4, install_signal_handlers=False, schedules=False
    )
    thread = threading.Thread(target=worker.run, name="screenshot-worker", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (app.workers() and app.get(job.id).status == "processing" and app.workers()[0]["running"]):
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not start its job within 30 s")
        time.sleep(0.1)
    try:
        yield worker
    finally:
        worker.stop(graceful=False)
        thread.join(30)


@contextmanager
def serving(app: conveyor.App) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(app, [KEY]), host="127.0.0.1", port=PORT, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit(f"the server did not start on port {PORT}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{PORT}"
    finally:
        server.should_exit = True
        thread.join(10)


def shoot(page: Page, url: str, name: str, scheme: str, *, full: bool = True) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    expect(page.locator("main .page")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header would otherwise sit mid-picture
    path = OUT / f"dashboard-{name}-{scheme}.png"
    page.screenshot(path=str(path), full_page=full)
    print(f"wrote {path.relative_to(OUT.parent.parent)}")


def main() -> int:
    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM}: run `make chromium` first", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        app = shop(Path(tmp) / "shop.db")
        fill(app, Path(tmp) / "shop.db")
        failed = app.jobs(status="failed", task="charge_card", limit=1).items[0].id
        with serving(app) as base, live_worker(app), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            for scheme in ("light", "dark"):
                for name, viewport in (
                    ("", {"width": 1280, "height": 860}),
                    ("phone-", {"width": 390, "height": 844}),
                ):
                    context = browser.new_context(
                        viewport=viewport,
                        color_scheme=scheme,
                        timezone_id="Europe/Berlin",
                        locale="en-GB",
                        device_scale_factor=1,
                    )
                    context.add_init_script(
                        f"sessionStorage.setItem('conveyor-api-key', '{KEY}');"
                        "sessionStorage.setItem('conveyor-paused', '1');"
                    )
                    page = context.new_page()
                    shoot(page, base + "/#/overview", name + "overview", scheme)
                    if name:
                        shoot(page, base + "/#/workers", name + "workers", scheme)
                        shoot(page, f"{base}/#/jobs/{failed}", name + "job", scheme)
                        context.close()
                        continue
                    shoot(page, base + "/#/jobs?status=failed", "jobs", scheme)
                    page.goto(f"{base}/#/jobs/{failed}")
                    page.get_by_text("Attempt 1").click()
                    shoot(page, f"{base}/#/jobs/{failed}", "job", scheme)
                    page.goto(base + "/#/failures")
                    group = page.locator("details.group").filter(has_text="CardDeclined")
                    group.locator("summary").click()
                    group.get_by_label("Select every job on this page").check()
                    shoot(page, base + "/#/failures", "failures", scheme)
                    shoot(page, base + "/#/queues", "queues", scheme)
                    shoot(page, base + "/#/schedules", "schedules", scheme)
                    shoot(page, base + "/#/workers", "workers", scheme)
                    context.close()
            browser.close()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
