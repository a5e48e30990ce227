"""The ops page (what Flower is to Celery) and its API, behind the admin token.

``/ops`` is a plain HTML+JS page served by chute (no build step, no CDN); it asks for the
admin token (``CHUTE_ADMIN_TOKEN``, unrelated to tenants' API keys) and polls
``GET /v1/ops/overview``: per stage the queue (RabbitMQ) and the waiting, throughput and
p50/p99 (the database), worker processes consuming, failures by code with the latest failed
jobs, the longest-unchanged jobs in flight, and webhook endpoints' health. Failed jobs can be
retried and jobs in flight cancelled from there.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from importlib.resources import files
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from actors.cancel import cancel_job
from actors.pipeline import retry_job
from actors.queues import read_queues
from models import job as jobs
from models import ops
from models.db import read_scope, utcnow
from models.errors import NotFound, Unauthorized
from models.settings import current_settings
from models.views import iso

bp = Blueprint("ops", __name__)

#: The window of throughput and p50/p99 per stage.
LATENCY_WINDOW = timedelta(minutes=15)
#: The window of failures by code and webhook endpoints' health.
HEALTH_WINDOW = timedelta(hours=24)
#: Jobs listed as latest failed and as longest in flight.
LIST_LIMIT = 20
#: The page's files, served as they are.
ASSETS = {"ops.html": "text/html", "ops.js": "text/javascript"}


def require_admin() -> None:
    """401 unless ``Authorization: Bearer`` carries the admin token; 404 when none is configured."""
    token = current_settings().admin_token
    if not token:
        raise NotFound("the ops API is off: set CHUTE_ADMIN_TOKEN", code="ops_disabled")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("send 'Authorization: Bearer <admin token>'", code="invalid_admin_token")


def _asset(name: str) -> Response:
    body = files("web").joinpath("static", name).read_bytes()
    response = Response(body, mimetype=ASSETS[name])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'"
    return response


@bp.get("/ops")
def page() -> ResponseReturnValue:
    return _asset("ops.html")


@bp.get("/ops/ops.js")
def script() -> ResponseReturnValue:
    return _asset("ops.js")


def _job(job: jobs.Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "tenant_id": job.tenant_id,
        "filename": job.filename,
        "size": job.size,
        "status": job.status,
        "stage": job.stage,
        "attempts": job.attempts,
        "error": job.error,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "retryable": job.status == jobs.FAILED and job.uploaded_at is not None,
    }


@bp.get("/v1/ops/overview")
def overview() -> ResponseReturnValue:
    """Everything the page shows, in one call."""
    require_admin()
    settings = current_settings()
    now = utcnow()
    broker_error = None
    try:
        queues = {q.stage: q for q in read_queues(settings)}
    except Exception as e:
        queues, broker_error = {}, f"{type(e).__name__}: {e}"[:300]
    with read_scope() as session:
        waiting = {w.stage: w for w in ops.waiting_by_stage(session, now)}
        latency = ops.stage_latency(session, LATENCY_WINDOW, now)
        failures = ops.failures_by_code(session, now - HEALTH_WINDOW)
        failed = [_job(j) for j in ops.latest_jobs(session, (jobs.FAILED,), LIST_LIMIT)]
        in_flight = [_job(j) for j in ops.latest_jobs(session, (jobs.QUEUED, jobs.PROCESSING), LIST_LIMIT,
                                                      oldest_first=True)]  # fmt: skip
        endpoints = ops.webhook_endpoints(session, now - HEALTH_WINDOW)
        open_uploads = ops.open_uploads(session)
    stages = []
    for lat in latency:
        q, w = queues.get(lat.stage), waiting[lat.stage]
        stages.append(
            {
                "stage": lat.stage,
                "queue": settings.queue(lat.stage),
                "ready": q.ready if q else None,
                "unacked": q.unacked if q else None,
                "consumers": q.consumers if q else None,
                "dead_letters": q.dead if q else None,
                "delayed": q.delayed if q else None,
                "waiting": w.count,
                "oldest_waiting_seconds": round(w.oldest_seconds, 3),
                "done": lat.done,
                "per_minute": round(lat.per_minute, 3),
                "p50_seconds": lat.p50,
                "p99_seconds": lat.p99,
            }
        )
    return {
        "generated_at": iso(now),
        "latency_window_seconds": LATENCY_WINDOW.total_seconds(),
        "health_window_seconds": HEALTH_WINDOW.total_seconds(),
        "broker_error": broker_error,
        "stages": stages,
        "uploads_open": open_uploads,
        "failures_by_code": failures,
        "failed_jobs": failed,
        "in_flight_jobs": in_flight,
        "webhook_endpoints": [
            {**e.__dict__, "last_attempt_at": iso(e.last_attempt_at), "p50_ms": e.p50_ms} for e in endpoints
        ],
    }


@bp.post("/v1/ops/jobs/<job_id>/retry")
def retry(job_id: str) -> ResponseReturnValue:
    """Send a failed job back to the stage it failed in (409 when its bytes are gone)."""
    require_admin()
    stage = retry_job(job_id)
    return {"job_id": job_id, "status": jobs.PROCESSING, "stage": stage}, 202


@bp.delete("/v1/ops/jobs/<job_id>")
def cancel(job_id: str) -> ResponseReturnValue:
    """Cancel any tenant's job that has not ended (409 once it has)."""
    require_admin()
    with read_scope() as session:
        job = jobs.load_job(session, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}", code="job_not_found")
        tenant = job.tenant_id
    cancel_job(tenant, job_id)
    return {"job_id": job_id, "status": jobs.CANCELLED}, 202
