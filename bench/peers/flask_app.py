"""The peer's web app: a tiny Flask app that stages an upload, queues the chain, shows status.

As the tutorials write it: the multipart ``file`` is saved under a fresh id, the Celery chain
of :mod:`bench.peers.celery_app` is queued, and ``GET /jobs/<id>`` answers from Celery's
result backend (``AsyncResult``). No authentication, no database. Served by gunicorn with
``chute web``'s command line (``bench.peers.flask_app:app``).

    POST /jobs        multipart: ``file``, ``webhook_url`` → 202 {"job_id", "status"}
    GET  /jobs/<id>   {"job_id", "status", "result"}: PENDING until the last stage succeeded
"""

from __future__ import annotations

import uuid
from typing import Any

from celery.result import AsyncResult
from flask import Flask, request
from werkzeug.utils import secure_filename

from bench.peers.celery_app import STAGING_DIR, start_job
from bench.peers.celery_app import app as celery

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/jobs")
def submit() -> tuple[dict[str, Any], int]:
    upload = request.files["file"]
    job_id = uuid.uuid4().hex
    directory = STAGING_DIR / job_id
    directory.mkdir(parents=True)
    path = directory / (secure_filename(upload.filename or "") or "upload")
    upload.save(path)
    start_job(
        {
            "job_id": job_id,
            "path": str(path),
            "filename": path.name,
            "content_type": upload.mimetype or "application/octet-stream",
            "webhook_url": request.form["webhook_url"],
        }
    )
    return {"job_id": job_id, "status": "queued"}, 202


@app.get("/jobs/<job_id>")
def status(job_id: str) -> dict[str, Any]:
    result = AsyncResult(job_id, app=celery)
    return {"job_id": job_id, "status": result.status, "result": result.result if result.successful() else None}
