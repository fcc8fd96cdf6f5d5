"""``app.asgi()`` mounted under a prefix inside a Starlette app: API, dashboard and assets, keys."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import conveyor
from test_http_api import serving

KEY = "mount-key-8c1e5a2f90b34d17"


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the host application")


def host_app(app: conveyor.App) -> Starlette:
    return Starlette(routes=[Route("/", home), Mount("/queue", app=app.asgi(api_keys=[KEY]))])


def test_api_and_dashboard_under_a_prefix_with_keys_enforced(tmp_path: Path) -> None:
    app = conveyor.App(f"sqlite:///{tmp_path / 'mounted.db'}")  # never migrated: the mount opens it

    @app.task()
    def add(a: int, b: int) -> int:
        return a + b

    with serving(host_app(app)) as base, httpx.Client(base_url=base) as http:
        assert http.get("/").text == "the host application"
        # The dashboard: /queue sends the browser to /queue/, whose relative asset URLs follow the prefix.
        redirect = http.get("/queue")
        assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith("/queue/")
        page = http.get("/queue/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assets = [a for a in re.findall(r'(?:href|src)="([^"]+)"', page.text) if a.startswith("assets/")]
        assert len(assets) == 2, page.text  # the style sheet and the main module, both relative
        for asset in assets:
            url = urljoin(f"{base}/queue/", asset)
            assert url.startswith(f"{base}/queue/assets/")
            assert http.get(url).status_code == 200, url
        assert http.get("/queue/assets/js/api.js").status_code == 200
        # Keys as in `conveyor serve`: nothing without one, everything with it.
        refused = http.post("/queue/api/jobs", json={"task": "add", "args": [1, 2]})
        assert refused.status_code == 401 and refused.json()["error"]["code"]
        assert http.get("/queue/api/queue/stats", headers={"x-api-key": "wrong"}).status_code == 401
        assert app.stats()["counts"]["pending"] == 0
        created = http.post(
            "/queue/api/jobs", json={"task": "add", "args": [1, 2]}, headers={"x-api-key": KEY}
        )
        assert created.status_code == 201
        job_id = created.json()["id"]
        shown = http.get(f"/queue/api/jobs/{job_id}", headers={"x-api-key": KEY})
        assert shown.status_code == 200 and shown.json()["status"] == "pending"
        assert http.get("/queue/healthz").status_code == 200
        assert http.get("/queue/metrics").status_code == 200
    assert app.get(job_id).args == [1, 2]
    app.close()


def test_served_on_its_own_it_runs_its_lifespan(tmp_path: Path) -> None:
    app = conveyor.App(f"sqlite:///{tmp_path / 'alone.db'}")
    with serving(app.asgi(api_keys=[KEY])) as base:
        stats = httpx.get(f"{base}/api/queue/stats", headers={"x-api-key": KEY})
    assert stats.status_code == 200 and stats.json()["counts"]["pending"] == 0
    app.close()
