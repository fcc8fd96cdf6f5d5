"""The dashboard in a real browser (Playwright driving the system's Chromium).

A real uvicorn server on loopback serves a real SQLite file with a real API key; jobs
run through a real Worker in this process. Every wait is on a condition (Playwright's
auto-waiting ``expect``), never a fixed sleep.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

import conveyor
from browser import require_browser
from conveyor.server import create_app
from test_http_api import serving

HERE = Path(__file__).parent
SRC = HERE.parent / "src"

pytestmark = pytest.mark.timeout(120)

KEY = "dashboard-key-7c1e52b9a04d"
READ_KEY = "dashboard-read-key-51a0c3e2"


@dataclass
class Site:
    """A served App, an HTTP client with the key, and a way to run due jobs."""

    url: str
    app: conveyor.App
    client: httpx.Client

    def run_jobs(self) -> None:
        conveyor.Worker(self.app, install_signal_handlers=False).process_batch(100)

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.client.get("/api/queue/stats").raise_for_status().json()
        return data


def build_app(path: Path) -> conveyor.App:
    app = conveyor.App(f"sqlite:///{path}")

    @app.task(max_attempts=1, queue="billing")
    def charge(order_id: str, amount: int) -> dict[str, Any]:
        if amount <= 0:
            raise ValueError(f"amount must be positive for order '{order_id}', got {amount}")
        return {"order": order_id, "charged": amount}

    @app.task(max_attempts=1, queue="mail")
    def send(to: str) -> None:
        raise KeyError(f"no mailbox {to}")

    @app.task(queue="mail")
    def noop() -> None:
        return None

    return app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path)
        yield launched
        launched.close()


def serve(tmp_path: Path, keys: list[str]) -> Iterator[Site]:
    app = build_app(tmp_path / "dashboard.db")
    with serving(create_app(app, keys)) as url:
        headers = {"x-api-key": keys[0]} if keys else {}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            yield Site(url, app, client)
    app.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from serve(tmp_path, [KEY])


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Paris")
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.dialogs = dialogs
    yield opened
    context.close()
    assert not errors, f"the page raised: {errors}"
    assert not dialogs, f"a JavaScript dialog fired: {dialogs}"


def sign_in(page: Any, site: Site, key: str = KEY) -> None:
    from playwright.sync_api import expect

    page.goto(site.url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator(".cards")).to_be_visible()


def failed_charge(site: Site, amount: int = -5, order: str = "A-1") -> str:
    job = site.app.enqueue("charge", [order, amount])
    site.run_jobs()
    return job.id


def test_key_form_asks_calmly_then_overview_counts_match_the_api(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    for i in range(3):
        site.app.enqueue("charge", [f"ok-{i}", 10 + i])
    site.app.enqueue("send", ["nobody@example.com"])
    site.run_jobs()
    site.app.enqueue("noop")  # stays pending
    page.goto(site.url + "/")
    expect(page.get_by_role("heading", name="Enter an API key")).to_be_visible()
    expect(page.locator(".error-text")).to_have_count(0)  # nothing red before anything is typed
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Use key").click()
    stats = site.stats()
    for state, count in stats["counts"].items():
        expect(page.locator(f'[data-testid="count-{state}"] .card-value')).to_have_text(str(count))
    for queue, counts in stats["queues"].items():
        row = page.locator(f'#queues tr[data-queue="{queue}"]')
        for state, count in counts.items():
            expect(row.locator(f'td[data-state="{state}"]')).to_have_text(str(count))
    assert stats["counts"]["completed"] == 3 and stats["counts"]["failed"] == 1
    # The key is kept for the tab: a reload does not ask again.
    page.reload()
    expect(page.locator(".cards")).to_be_visible()


def test_wrong_key_is_refused_with_a_clear_message(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(site.url + "/")
    page.get_by_label("API key").fill("not-the-key-at-all")
    page.get_by_role("button", name="Use key").click()
    expect(page.get_by_role("alert").filter(has_text="did not accept that key")).to_be_visible()
    expect(page.get_by_label("API key")).to_be_focused()


def test_failed_job_shows_traceback_then_edit_arguments_resubmit_and_complete(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    job_id = failed_charge(site)
    sign_in(page, site)
    page.goto(site.url + "/#/failures")
    page.get_by_role("link", name=f"Open job {job_id}").click()
    expect(page.locator("h1")).to_contain_text("charge")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    traceback = page.locator("section", has=page.get_by_role("heading", name="Traceback"))
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("ValueError: amount must be positive")
    # Local time with its zone; hovering gives UTC.
    created = page.locator("dd time").first
    expect(created).to_contain_text(re.compile(r"GMT\+1|GMT\+2|CET|CEST"))
    expect(created).to_have_attribute("title", re.compile(r"UTC$"))

    page.get_by_role("button", name="Edit arguments and resubmit").click()
    args = page.get_by_label("args (JSON array)")
    expect(args).to_be_focused()
    args.fill('["A-1", ')
    page.get_by_role("button", name="Resubmit with these arguments").click()
    expect(page.locator("#edit-problem")).to_contain_text("not valid JSON")
    args.fill('["A-1", 25]')
    page.get_by_role("button", name="Resubmit with these arguments").click()
    expect(page.locator("h1 .badge")).to_have_text("pending")
    # The original arguments were visible beside the edit; the stored ones are now the new ones.
    assert site.client.get(f"/api/jobs/{job_id}").json()["args"] == ["A-1", 25]
    site.run_jobs()
    page.keyboard.press("r")
    expect(page.locator("h1 .badge")).to_have_text("completed")
    result = page.locator("section", has=page.get_by_role("heading", name="Result"))
    expect(result).to_contain_text('"charged":25')


def test_bulk_resubmit_of_one_error_group_confirms_with_the_count(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    charges = [failed_charge(site, -i, f"B-{i}") for i in range(1, 4)]
    for person in ("ann", "bob"):
        site.app.enqueue("send", [person])
    site.run_jobs()
    sign_in(page, site)
    page.goto(site.url + "/#/failures")
    expect(page.get_by_test_id("failure-summary")).to_have_text("5 failed job(s) in 2 error group(s).")
    group = page.locator("details.group").filter(has_text="ValueError")
    expect(group.get_by_test_id("group-count")).to_have_text("3")
    group.locator("summary").click()
    group.get_by_label("Select every job on this page").check()
    expect(group.get_by_test_id("selected-count")).to_have_text("3 selected")
    group.get_by_role("button", name="Resubmit selected (3)").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Resubmit 3 failed jobs?")
    dialog.get_by_role("button", name="Resubmit 3 failed jobs").click()
    expect(page.locator("#toast")).to_have_text("Resubmitted 3 of 3 job(s).")
    expect(page.get_by_test_id("failure-summary")).to_have_text("2 failed job(s) in 1 error group(s).")
    assert {site.client.get(f"/api/jobs/{i}").json()["status"] for i in charges} == {"pending"}
    assert site.stats()["counts"]["failed"] == 2


def test_script_in_an_error_and_in_arguments_renders_as_text(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    payload = "<script>alert('args')</script><img src=x onerror=alert(1)>"
    job = site.app.enqueue("send", [payload])
    site.run_jobs()
    sign_in(page, site)
    page.goto(site.url + "/#/failures")
    expect(page.locator("details.group td.error-cell")).to_contain_text(payload)
    page.goto(f"{site.url}/#/jobs/{job.id}")
    for heading in ("Arguments", "Error"):
        section = page.locator("section", has=page.get_by_role("heading", name=heading, exact=True))
        expect(section).to_contain_text(payload)
    assert page.locator("main script, main img").count() == 0
    assert page.dialogs == []


def test_keyboard_alone_reaches_every_action_on_the_job_page(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    job_id = failed_charge(site)
    sign_in(page, site)
    page.keyboard.press("g")
    page.keyboard.press("j")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    page.goto(f"{site.url}/#/jobs/{job_id}")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    wanted = {"Retry", "Edit arguments and resubmit", "Delete", "Copy", "Attempt 1"}
    reached: set[str] = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        label = page.evaluate("document.activeElement.innerText.trim().split('\\n')[0]")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"focus on {label!r} is not visible"
        reached |= {w for w in wanted if label.startswith(w)}
        if reached == wanted:
            break
    assert reached == wanted
    page.get_by_role("button", name="Delete").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete this job?")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    page.keyboard.press("?")
    expect(page.get_by_role("dialog")).to_contain_text("Keyboard shortcuts")
    page.keyboard.press("Escape")
    page.keyboard.press("g")
    page.keyboard.press("f")
    expect(page.get_by_role("heading", name="Failures")).to_be_visible()


def test_dark_mode_follows_the_system_setting(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    sign_in(page, site)
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    page.emulate_media(color_scheme="dark")
    expect(page.locator("body")).not_to_have_css("background-color", light)
    red, green, blue = (int(v) for v in re.findall(r"\d+", page.evaluate(background))[:3])
    assert red + green + blue < 150, "the dark background is dark"


def test_empty_states_and_a_banner_when_the_server_goes_away(tmp_path: Path, page: Any) -> None:
    from playwright.sync_api import expect

    app = build_app(tmp_path / "keyless.db")
    with serving(create_app(app, [])) as url:
        page.goto(url + "/#/failures")  # no keys configured: loopback mode works without asking
        expect(page.get_by_text("No failed jobs.")).to_be_visible()
        expect(page.get_by_text("raise conveyor.Permanent")).to_be_visible()
    page.keyboard.press("r")
    expect(page.locator("#banner")).to_contain_text("The server cannot be reached")
    expect(page.get_by_text("No failed jobs.")).to_be_visible()  # the last data stays on screen
    app.close()


def test_bulk_resubmit_all_matching_an_error_group_counts_first(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    charges = [failed_charge(site, -i, f"C-{i}") for i in range(1, 5)]
    site.app.enqueue("send", ["ann"])
    site.run_jobs()
    sign_in(page, site)
    page.goto(site.url + "/#/failures")
    group = page.locator("details.group").filter(has_text="ValueError")
    expect(group.get_by_test_id("group-count")).to_have_text("4")
    group.locator("summary").click()
    group.get_by_role("button", name="Resubmit all matching…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Resubmit all 4 failed jobs matching?")
    expect(dialog).to_contain_text("ValueError: amount must be positive for order")
    assert site.stats()["counts"]["failed"] == 5, "the count came from a dry run: nothing changed yet"
    dialog.get_by_role("button", name="Resubmit 4 failed jobs").click()
    expect(page.locator("#toast")).to_have_text("Resubmitted 4 job(s) matching this error.")
    expect(page.get_by_test_id("failure-summary")).to_have_text("1 failed job(s) in 1 error group(s).")
    assert {site.client.get(f"/api/jobs/{i}").json()["status"] for i in charges} == {"pending"}
    # Each job's page says who replayed it, and when.
    page.goto(f"{site.url}/#/jobs/{charges[0]}")
    history = page.locator("section", has=page.get_by_role("heading", name=re.compile(r"^History")))
    expect(history.get_by_test_id("history-item")).to_contain_text(
        re.compile(r"resubmitted with others by admin:[0-9a-f]{8}")
    )
    expect(history).to_contain_text("4 jobs")


def test_job_page_history_keeps_the_arguments_before_an_edit(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    job_id = failed_charge(site, -3, "E-1")
    sign_in(page, site)
    page.goto(f"{site.url}/#/jobs/{job_id}")
    expect(page.get_by_test_id("key-role")).to_contain_text("admin key")
    page.get_by_role("button", name="Edit arguments and resubmit").click()
    page.get_by_label("args (JSON array)").fill('["E-1", 30]')
    page.get_by_role("button", name="Resubmit with these arguments").click()
    expect(page.locator("h1 .badge")).to_have_text("pending")
    item = page.get_by_test_id("history-item")
    expect(item).to_contain_text("resubmitted with edited arguments by admin:")
    item.get_by_text("Arguments before the edit").click()
    expect(item).to_contain_text('["E-1",-3]')


@pytest.fixture
def two_key_site(tmp_path: Path) -> Iterator[Site]:
    yield from serve(tmp_path, [KEY, f"read:viewer:{READ_KEY}"])


def test_a_read_only_key_sees_no_action_buttons_and_a_forged_request_is_refused(
    two_key_site: Site, page: Any
) -> None:
    from playwright.sync_api import expect

    site = two_key_site
    job_id = failed_charge(site)
    sign_in(page, site, READ_KEY)
    expect(page.get_by_test_id("key-role")).to_have_text("read key · read:viewer")
    page.goto(f"{site.url}/#/jobs/{job_id}")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    for name in ("Retry", "Edit arguments and resubmit", "Delete", "Cancel job"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    page.goto(site.url + "/#/failures")
    group = page.locator("details.group").first
    expect(group).to_be_visible()
    expect(group.locator("table")).to_be_visible()  # the only group opens by itself
    expect(group.get_by_role("button", name=re.compile("Resubmit|Delete|Retry"))).to_have_count(0)
    expect(group.get_by_role("checkbox")).to_have_count(0)
    # The page hides the buttons; the server is what refuses: a request forged in the page gets a 403.
    answer = page.evaluate(
        """async ([id, key]) => {
            const init = {method: "POST", headers: {"x-api-key": key}};
            const r = await fetch("api/queue/" + id + "/retry", init);
            return [r.status, await r.json()];
        }""",
        [job_id, READ_KEY],
    )
    assert answer[0] == 403 and "needs the write role" in answer[1]["error"]["message"]
    assert site.client.get(f"/api/jobs/{job_id}").json()["status"] == "failed"
    assert site.client.get("/api/actions").json()["items"] == []


# -- queues, schedules and groups --------------------------------------------------------------------
def queue_info(site: Site, name: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = site.client.get("/api/queues").raise_for_status().json()["items"]
    return next(q for q in items if q["name"] == name)


def test_pause_and_resume_a_queue_and_edit_its_limits_from_the_queues_page(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    site.app.enqueue("noop")  # the queue "mail" exists through its job
    sign_in(page, site)
    page.keyboard.press("g")
    page.keyboard.press("q")
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    card = page.locator('article.queue[data-queue="mail"]')
    expect(card.locator('[data-state="pending"] .mini-value')).to_have_text("1")
    expect(card.get_by_test_id("running")).to_contain_text("0 running · no limit")

    # From the keyboard: Enter on Pause, Tab from Cancel to the confirmation, Enter.
    card.get_by_role("button", name="Pause").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Pause mail?")
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Pause mail")).to_be_focused()
    page.keyboard.press("Enter")
    expect(card.get_by_test_id("paused")).to_have_text("paused")
    expect(card.get_by_role("button", name="Resume")).to_be_focused()  # focus stays on the toggle
    assert queue_info(site, "mail")["paused"] is True
    page.goto(site.url + "/#/overview")  # the overview flags it too
    expect(page.locator('#queues tr[data-queue="mail"]').get_by_test_id("paused")).to_be_visible()
    page.goto(site.url + "/#/queues")
    card.get_by_role("button", name="Resume").click()
    expect(card.get_by_test_id("paused")).to_have_count(0)
    assert queue_info(site, "mail")["paused"] is False

    # A refused value is explained in the API's words, beside the fields, and changes nothing.
    card.get_by_role("button", name="Edit limits").click()
    concurrency = card.get_by_label("Concurrency", exact=True)
    expect(concurrency).to_be_focused()
    card.get_by_label("Rate limit", exact=True).fill("ten/s")
    card.get_by_role("button", name="Save limits").click()
    problem = card.get_by_role("alert")
    expect(problem).to_contain_text("ten/s")
    assert queue_info(site, "mail")["rate_limit"] is None
    card.get_by_label("Rate limit", exact=True).fill("30/m")
    concurrency.fill("3")
    card.get_by_role("button", name="Save limits").click()
    expect(page.locator("#toast")).to_contain_text("Limits of mail saved")
    expect(card.get_by_test_id("running")).to_contain_text("0 of 3 running")
    expect(card.get_by_test_id("rate")).to_contain_text("0 of 30/m started")
    info = queue_info(site, "mail")
    assert (info["concurrency"], info["rate_limit"], info["group_concurrency"]) == (3, "30/m", None)
    # An emptied field removes that limit; the others stay.
    card.get_by_role("button", name="Edit limits").click()
    card.get_by_label("Rate limit", exact=True).fill("")
    card.get_by_role("button", name="Save limits").click()
    expect(card.get_by_test_id("rate")).to_have_text("no limit")
    info = queue_info(site, "mail")
    assert (info["concurrency"], info["rate_limit"]) == (3, None)


def test_a_read_only_key_sees_no_queue_or_schedule_actions_and_a_forged_patch_is_refused(
    two_key_site: Site, page: Any
) -> None:
    from playwright.sync_api import expect

    site = two_key_site
    site.app.enqueue("noop")
    site.app.schedule("hourly-noop", task="noop", cron="0 * * * *")
    sign_in(page, site, READ_KEY)
    page.goto(site.url + "/#/queues")
    card = page.locator('article.queue[data-queue="mail"]')
    expect(card.locator('[data-state="pending"] .mini-value')).to_have_text("1")
    for name in ("Pause", "Resume", "Edit limits"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    page.goto(site.url + "/#/schedules")
    expect(page.locator('tr[data-schedule="hourly-noop"]')).to_be_visible()
    for name in ("Pause", "Resume", "Run now"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    answers = page.evaluate(
        """async (key) => {
            const headers = {"x-api-key": key, "content-type": "application/json"};
            const body = '{"concurrency": 1}';
            const patch = await fetch("api/queues/mail", {method: "PATCH", headers, body});
            const pause = await fetch("api/queues/mail/pause", {method: "POST", headers});
            const run = await fetch("api/schedules/hourly-noop/run", {method: "POST", headers});
            return [[patch.status, await patch.json()], [pause.status], [run.status]];
        }""",
        READ_KEY,
    )
    assert answers[0][0] == 403 and "needs the admin role" in answers[0][1]["error"]["message"]
    assert answers[1][0] == 403 and answers[2][0] == 403
    info = queue_info(site, "mail")
    assert (info["concurrency"], info["paused"]) == (None, False)
    assert site.stats()["counts"]["pending"] == 1  # the schedule ran nothing


def test_run_a_schedule_now_and_see_its_job_and_alerts_show_only_their_host(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    site.app.schedule("nightly-noop", task="noop", cron="0 2 * * *", tz="America/New_York")
    site.app.alert("ops", url="https://hooks.example.com/T0/secret-token-9d2", threshold=5, window="10m")
    sign_in(page, site)
    page.goto(site.url + "/#/schedules")
    row = page.locator('tr[data-schedule="nightly-noop"]')
    expect(row).to_contain_text("0 2 * * *")
    expect(row.get_by_test_id("next-run").locator("time")).to_contain_text(
        re.compile(r"CET|CEST|GMT\+1|GMT\+2")
    )
    expect(row.get_by_test_id("zone-time")).to_contain_text(re.compile(r"02:00( AM)? America/New_York"))
    expect(row.get_by_test_id("last-run")).to_contain_text("not yet")
    alerts = page.locator("#alerts")
    expect(alerts).to_contain_text("5 job(s) fail within 10m")
    expect(alerts).to_contain_text("hooks.example.com")
    expect(alerts).not_to_contain_text("secret-token")

    row.get_by_role("button", name="Pause").click()
    expect(row.get_by_role("button", name="Resume")).to_be_visible()
    assert site.client.get("/api/schedules").json()["items"][0]["paused"] is True
    row.get_by_role("button", name="Resume").click()
    expect(row.get_by_role("button", name="Pause")).to_be_visible()

    row.get_by_role("button", name="Run now").click()
    expect(page.locator("#toast")).to_contain_text("Enqueued noop now")
    link = row.get_by_role("link", name=re.compile("^(Job run now|Last job) of nightly-noop")).first
    link.click()
    expect(page.locator("h1")).to_contain_text("noop")
    expect(page.get_by_test_id("schedule")).to_have_text("nightly-noop")
    assert site.stats()["counts"]["pending"] == 1


def test_job_page_shows_a_group_and_nothing_for_absent_fields(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    body = {"task": "noop", "group": "tenant-<b>42</b>"}
    grouped = site.client.post("/api/jobs", json=body).raise_for_status()
    plain = site.app.enqueue("noop")
    sign_in(page, site)
    page.goto(f"{site.url}/#/jobs/{grouped.json()['id']}")
    group = page.get_by_test_id("group")
    expect(group).to_have_text("tenant-<b>42</b>")  # as text, never markup
    group.click()
    expect(page.locator("#f-group")).to_have_value("tenant-<b>42</b>")
    expect(page.locator("table.jobs tbody tr")).to_have_count(1)
    page.goto(f"{site.url}/#/jobs/{plain.id}")
    expect(page.locator("h1 .badge")).to_have_text("pending")
    for label in ("group", "schedule", "scheduled for", "trace id"):
        expect(page.locator("dl.facts dt", has_text=re.compile(f"^{label}$"))).to_have_count(0)
    expect(page.get_by_role("heading", name="Progress")).to_have_count(0)


# -- the overview's throughput chart and the workers page -----------------------------------------
def chart_numbers(page: Any) -> dict[str, Any]:
    """What the drawn chart says: its totals and each minute's bars, read from the SVG."""
    numbers: dict[str, Any] = page.evaluate(
        """() => {
            const svg = document.querySelector('[data-testid="throughput-svg"]');
            const minutes = [...svg.querySelectorAll("g.minute")].map((g) => ({
                start: g.dataset.start, completed: Number(g.dataset.completed),
                failed: Number(g.dataset.failed), bars: g.querySelectorAll("rect.bar").length }));
            return { completed: Number(svg.dataset.completed), failed: Number(svg.dataset.failed), minutes,
                     title: svg.querySelector("title").textContent,
                     labelledby: svg.getAttribute("aria-labelledby") };
        }"""
    )
    return numbers


def test_overview_chart_draws_the_last_hour_per_minute_as_the_api_counts_it(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    for i in range(4):
        site.app.enqueue("charge", [f"ok-{i}", 10 + i])
    failed_charge(site, -1, "F-1")
    site.app.enqueue("send", ["nobody@example.com"])  # fails for good too
    site.run_jobs()
    sign_in(page, site)
    chart = page.locator('[data-testid="throughput-svg"]')
    expect(chart).to_have_attribute("data-completed", "4")
    expect(chart).to_have_attribute("data-failed", "2")
    api = site.client.get("/api/throughput").raise_for_status().json()
    drawn = chart_numbers(page)
    assert (drawn["completed"], drawn["failed"]) == (api["completed"], api["failed"]) == (4, 2)
    assert len(drawn["minutes"]) == 60
    # Each minute's bars are the API's minute (the window may have moved on by one minute since).
    by_start = {m["start"]: m for m in api["minutes"]}
    for minute in drawn["minutes"]:
        if minute["start"] in by_start:
            expected = by_start[minute["start"]]
            assert (minute["completed"], minute["failed"]) == (expected["completed"], expected["failed"])
        assert minute["bars"] == (minute["completed"] > 0) + (minute["failed"] > 0)
    assert drawn["title"] == "Jobs completed and failed per minute"
    assert drawn["labelledby"] == "throughput-title throughput-desc"
    expect(page.locator("#throughput-desc")).to_contain_text("4 completed, 2 failed")
    summary = page.locator('[data-testid="throughput-summary"]')
    expect(summary).to_contain_text("Last 60 minutes: 4 completed, 2 failed.")
    expect(page.locator('[data-testid="throughput-completed"]')).to_have_text("4")
    expect(page.locator('[data-testid="throughput-failed"]')).to_have_text("2")
    # The table behind the bars: the busy minute(s), local time and counts.
    page.get_by_text("Minute by minute").click()
    rows = page.locator(".chart-table tbody tr")
    expect(rows.first).to_be_visible()
    assert sum(int(t) for t in rows.locator("td:nth-child(2)").all_inner_texts()) == 4
    # Local time labels on the x axis: the page runs in Europe/Paris, not in UTC.
    paris = ZoneInfo("Europe/Paris")
    starts = [datetime.fromisoformat(m["start"]) for m in api["minutes"]]
    # The browser's locale decides the clock (en-US: "02:10 PM"); either way, Paris time.
    local = {t.astimezone(paris).strftime(f) for t in starts for f in ("%H:%M", "%I:%M %p")}
    utc = {t.strftime(f) for t in starts for f in ("%H:%M", "%I:%M %p")}
    labels = page.locator("svg.chart text.tick.x").all_text_contents()
    assert len(labels) >= 3 and set(labels) <= local and not set(labels) <= utc, labels
    # Live refresh redraws it: two more jobs complete while the page is open.
    site.app.enqueue("charge", ["late-1", 5])
    site.app.enqueue("charge", ["late-2", 6])
    site.run_jobs()
    expect(chart).to_have_attribute("data-completed", "6", timeout=15_000)
    # Readable in dark mode too: the bars take the dark palette's colours.
    fill = "getComputedStyle(document.querySelector('rect.bar.completed')).fill"
    light = page.evaluate(fill)
    page.emulate_media(color_scheme="dark")
    expect(page.locator("rect.bar.completed").first).not_to_have_css("fill", light)


def test_overview_has_no_chart_when_the_server_lacks_the_route(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    def without_throughput(route: Any) -> None:
        document = route.fetch().json()
        document["paths"].pop("/api/throughput")
        route.fulfill(json=document)

    page.route("**/openapi.json", without_throughput)
    sign_in(page, site)
    expect(page.locator('[data-testid="count-pending"]')).to_be_visible()
    expect(page.locator('[data-testid="throughput"]')).to_have_count(0)


def start_worker(url: str) -> subprocess.Popen[bytes]:
    """A real ``conveyor worker`` process on ``url`` (tests/process/obsapp.py: queues obs and batch)."""
    env = {
        **os.environ,
        "CONVEYOR_URL": url,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "conveyor", "worker", "process.obsapp:app", "--queues", "obs,batch",
           "--concurrency", "3", "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=str(HERE))


def test_workers_page_lists_a_running_worker_and_drops_it_when_it_stops(
    site: Site, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    release = tmp_path / "release"
    site.app.declare("hold", queue="obs")
    job = site.app.enqueue("hold", [str(release)])
    worker = start_worker(site.app.backend.url)
    try:
        sign_in(page, site)
        page.goto(site.url + "/#/workers")
        row = page.locator("#workers tbody tr")
        expect(row).to_have_count(1, timeout=30_000)
        listed = site.client.get("/api/workers").raise_for_status().json()["items"]
        assert [w["pid"] for w in listed] == [worker.pid]
        entry = listed[0]
        expect(row.locator("th code")).to_have_text(entry["id"])
        expect(row.locator('[data-testid="host"]')).to_have_text(socket.gethostname())
        expect(row.locator('[data-testid="pid"]')).to_have_text(str(worker.pid))
        expect(row.locator('[data-testid="queues"]')).to_have_text("obs, batch")
        expect(row.locator('[data-testid="concurrency"]')).to_have_text("3")
        # The job it runs, linked to its page; relative ages for the start and the last beat.
        running = row.locator(f'[data-testid="running"] a[href="#/jobs/{job.id}"]')
        expect(running).to_be_visible(timeout=15_000)
        for cell in ("started", "last-seen"):
            age = row.locator(f'[data-testid="{cell}"] .age')
            expect(age).to_have_text(re.compile(r" · (just now|\d+ s ago)"))
        expect(page.locator('[data-testid="worker-summary"]')).to_have_text(
            "1 live worker(s), 1 of 3 slot(s) busy."
        )
        release.touch()
        expect(row.locator('[data-testid="running"]')).to_have_text("idle", timeout=15_000)
        assert site.app.get(job.id).status == "completed"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        expect(page.get_by_text("No worker is running.")).to_be_visible(timeout=15_000)
        expect(page.locator("#workers")).to_have_count(0)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
