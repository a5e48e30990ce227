"""The peer's worker: chute's four stages as a Celery 5 chain over Redis, tutorial style.

Written the way the FastAPI/Flask + Celery + Redis tutorials write it, so the benchmark compares
chute with what its users would otherwise deploy: settings from the environment at import, one
module-level Celery app (Redis as broker and result backend) and minio client, one task per
stage passing a small dict down a ``chain``, Celery's defaults everywhere else (messages acked
before the task runs, no database, no fsync, the staged file read in place).

The work is chute's, for the same files: the sha256 of the staged file, the original put to the
same S3 server with minio, for images the derivatives chute makes (``thumb_256``, ``thumb_1024``
and ``web``, JPEG, never enlarged), and a webhook whose body is signed with HMAC-SHA256.

Run it as ``celery -A bench.peers.celery_app worker``; :mod:`bench.peers.flask_app` submits.

Environment (the benchmark sets every one):
    PEER_REDIS_URL: broker and result backend (a database of its own: ``redis://…/13``).
    PEER_KEY_PREFIX: prefix of every Redis key this app makes (so runs never meet).
    PEER_S3_ENDPOINT, PEER_S3_ACCESS_KEY, PEER_S3_SECRET_KEY, PEER_BUCKET: where files go.
    PEER_STAGING_DIR: where the web app leaves uploads for the worker.
    PEER_WEBHOOK_SECRET: the HMAC key of webhook signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import requests
from celery import Celery, chain
from minio import Minio
from PIL import Image

REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/13")
KEY_PREFIX = os.environ.get("PEER_KEY_PREFIX", "peer:")
BUCKET = os.environ.get("PEER_BUCKET", "peer")
STAGING_DIR = Path(os.environ.get("PEER_STAGING_DIR", "/tmp/peer-staging"))
WEBHOOK_SECRET = os.environ.get("PEER_WEBHOOK_SECRET", "change-me").encode()
#: The derivatives of an image, as chute makes them: (name, longest side, JPEG quality).
DERIVATIVES = (("thumb_256", 256, 80), ("thumb_1024", 1024, 80), ("web", 2048, 82))
#: Seconds a webhook POST may take.
WEBHOOK_TIMEOUT = 10

app = Celery("peer", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    broker_transport_options={"global_keyprefix": KEY_PREFIX},
    result_backend_transport_options={"global_keyprefix": KEY_PREFIX},
    broker_connection_retry_on_startup=True,
)

minio = Minio(
    os.environ.get("PEER_S3_ENDPOINT", "127.0.0.1:9000"),
    access_key=os.environ.get("PEER_S3_ACCESS_KEY", "minioadmin"),
    secret_key=os.environ.get("PEER_S3_SECRET_KEY", "minioadmin"),
    secure=False,
    region="us-east-1",
)


@app.task
def checksum(job: dict[str, Any]) -> dict[str, Any]:
    """The sha256 and size of the staged file."""
    digest = hashlib.sha256()
    with open(job["path"], "rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return {**job, "sha256": digest.hexdigest(), "size": os.path.getsize(job["path"])}


@app.task
def store(job: dict[str, Any]) -> dict[str, Any]:
    """Put the original into the bucket."""
    key = f"{job['job_id']}/{job['filename']}"
    minio.fput_object(BUCKET, key, job["path"], content_type=job["content_type"])
    return {**job, "key": key}


@app.task
def thumbnail(job: dict[str, Any]) -> dict[str, Any]:
    """Make and store an image's derivatives; the staged file is not needed after this."""
    derivatives = []
    try:
        if job["content_type"].startswith("image/"):
            with Image.open(job["path"]) as image:
                for name, size, quality in DERIVATIVES:
                    thumb = image.copy()
                    thumb.thumbnail((size, size))
                    buffer = io.BytesIO()
                    thumb.save(buffer, "JPEG", quality=quality)
                    key = f"{job['job_id']}/derivatives/{name}.jpg"
                    buffer.seek(0)
                    minio.put_object(BUCKET, key, buffer, buffer.getbuffer().nbytes, content_type="image/jpeg")
                    derivatives.append({"name": name, "key": key, "width": thumb.width, "height": thumb.height})
    finally:
        shutil.rmtree(Path(job["path"]).parent, ignore_errors=True)
    return {**job, "derivatives": derivatives}


@app.task(autoretry_for=(requests.RequestException,), retry_backoff=True, max_retries=5)
def notify(job: dict[str, Any]) -> dict[str, Any]:
    """POST the result to the job's webhook URL, signed with HMAC-SHA256."""
    data = {k: job.get(k) for k in ("job_id", "filename", "size", "sha256", "key", "derivatives")}
    body = json.dumps({"type": "job.completed", "data": data}).encode()
    signature = hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Signature": f"sha256={signature}"}
    requests.post(job["webhook_url"], data=body, headers=headers, timeout=WEBHOOK_TIMEOUT).raise_for_status()
    return data


def start_job(job: dict[str, Any]) -> None:
    """Queue the four stages; the job's status is the result of the last one (its task id)."""
    chain(checksum.s(job), store.s(), thumbnail.s(), notify.s().set(task_id=job["job_id"])).apply_async()
