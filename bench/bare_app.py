"""The api benchmark's ceiling: a bare Flask app answering chute's three routes from memory.

``GET /v1/jobs/<id>`` returns the JSON document in the file named by ``BENCH_BARE_JOB`` (a
real job view, fetched from chute in the same run); ``PUT /v1/uploads/<id>/chunks/<n>``
reads the body to the end and returns chute's answer shape; ``POST /v1/jobs`` parses the
multipart form with Werkzeug's parser, as chute does, drops the files and answers 202 in
chute's shape. No database, no auth, no disk: what Flask and gunicorn cost by themselves.
Served by gunicorn as ``bench.bare_app:app``.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, request

#: Bytes read from the request per read, as chute's chunk PUT does (web/staging_io.py).
COPY_SIZE = 1024 * 1024

app = Flask(__name__)
_job: dict[str, Any] = json.loads(Path(os.environ.get("BENCH_BARE_JOB", "/dev/null")).read_text() or "{}")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/jobs/<job_id>")
def show(job_id: str) -> dict[str, Any]:
    return _job


@app.put("/v1/uploads/<upload_id>/chunks/<int:index>")
def put_chunk(upload_id: str, index: int) -> dict[str, Any]:
    size = 0
    while block := request.stream.read(COPY_SIZE):
        size += len(block)
    return {"index": index, "size": size, "sha256": "0" * 64}


@app.post("/v1/jobs")
def create_batch() -> tuple[dict[str, Any], int]:
    parts = request.files.getlist("file")
    jobs = [{"job_id": f"job_{uuid.uuid4().hex[:24]}", "upload_id": f"upl_{uuid.uuid4().hex[:24]}",
             "filename": part.filename, "status": "queued"} for part in parts]  # fmt: skip
    return {"jobs": jobs, "total": len(jobs)}, 202
