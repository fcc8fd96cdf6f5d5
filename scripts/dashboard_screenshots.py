"""Screenshots of every dashboard page, light and dark, from a real run: ``make screenshots``.

Serves a fresh SQLite store with realistic jobs (a small shop: receipts, card charges,
thumbnails, an inventory sync that times out), runs them through a real Worker, and
drives the system's Chromium over every page. Writes docs/img/dashboard-*.png.
"""

from __future__ import annotations

import random
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

    return app


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


def fill(app: conveyor.App) -> None:
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
    for n in range(8):
        app.enqueue("send_receipt", [f"ORD-{10500 + n}", f"late{n}@example.com"], delay=60 * (n + 1))
    app.enqueue("make_thumbnail", [89001], priority=5)
    settings(app)
    grouped_mail(app)


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
        fill(app)
        failed = app.jobs(status="failed", task="charge_card", limit=1).items[0].id
        with serving(app) as base, sync_playwright() as playwright:
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
                    context.close()
            browser.close()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
