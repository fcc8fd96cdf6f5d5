"""A FastAPI app that hands slow work to Conveyor without blocking its event loop.

``POST /thumbnails`` enqueues with ``aenqueue`` and answers at once; ``GET
/thumbnails/{id}?wait=S`` awaits the result for up to S seconds with ``aresult``
(woken when the job finishes, not by polling); the queue's dashboard and HTTP API
are mounted at ``/queue``. Run the worker with ``conveyor worker main:queue``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from fastapi import FastAPI, HTTPException

import conveyor

queue = conveyor.App()  # CONVEYOR_URL, else ./conveyor.db


@queue.task(max_attempts=3, timeout=30)
def make_thumbnail(name: str, size: int) -> dict[str, Any]:
    """The slow part (here: pretend to resize an image)."""
    time.sleep(0.5)
    digest = hashlib.sha256(f"{name}:{size}".encode()).hexdigest()[:12]
    return {"name": name, "size": size, "path": f"thumbs/{digest}-{size}.png"}


app = FastAPI(title="thumbnails")
app.mount("/queue", queue.asgi())  # the dashboard at /queue/, the API at /queue/api/...


@app.post("/thumbnails", status_code=202)
async def create_thumbnail(name: str, size: int = 128) -> dict[str, str]:
    """Enqueue and answer at once: the event loop never waits on the queue's storage."""
    job = await make_thumbnail.aenqueue(name, size)
    return {"id": job.id, "status": job.state}


@app.get("/thumbnails/{job_id}")
async def get_thumbnail(job_id: str, wait: float = 0.0) -> dict[str, Any]:
    """The job's state, and its result once done; ``wait`` awaits it for up to that many seconds."""
    try:
        job = await queue.aget(job_id)
    except conveyor.JobNotFound:
        raise HTTPException(404, f"no thumbnail job {job_id}") from None
    try:
        result = await job.aresult(timeout=min(wait, 30.0))  # 0: one read, no wait
    except TimeoutError:
        return {"id": job.id, "status": job.state}
    except conveyor.JobFailed as failed:
        return {"id": job.id, "status": job.state, "error": failed.error}
    return {"id": job.id, "status": job.state, "result": result}
