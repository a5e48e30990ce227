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
from web.contract import Reply, operation
from web.schemas.ops import OpsCancelled, OpsEndpoint, OpsJob, OpsOverview, OpsRetried, OpsStage

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


#: Errors every ops API operation can answer.
ADMIN_ERRORS = {401: ["invalid_admin_token"], 404: ["ops_disabled"]}


@bp.get("/ops")
@operation("getOpsPage", tags=["ops"], summary="The ops page (it asks for the admin token)",
           responses={200: Reply(None, "an HTML page", media_type="text/html", schema={"type": "string"})},
           auth=None)  # fmt: skip
def page() -> ResponseReturnValue:
    return _asset("ops.html")


@bp.get("/ops/ops.js")
@operation("getOpsScript", tags=["ops"], summary="The ops page's script",
           responses={200: Reply(None, "JavaScript", media_type="text/javascript", schema={"type": "string"})},
           auth=None)  # fmt: skip
def script() -> ResponseReturnValue:
    return _asset("ops.js")


def _job(job: jobs.Job) -> OpsJob:
    return OpsJob(
        job_id=job.id,
        tenant_id=job.tenant_id,
        filename=job.filename,
        size=job.size,
        status=job.status,
        stage=job.stage,
        attempts=job.attempts,
        error=job.error,
        created_at=iso(job.created_at),
        updated_at=iso(job.updated_at),
        retryable=job.status == jobs.FAILED and job.uploaded_at is not None,
    )


@bp.get("/v1/ops/overview")
@operation(
    "getOpsOverview", tags=["ops"], summary="What the ops page shows: stages, failures, jobs, webhook endpoints",
    description="Per stage: the queue as RabbitMQ sees it, jobs due in the database and the oldest one's age, "
    "throughput and p50/p99 over 15 minutes; failures by code and webhook endpoints over 24 hours; the latest "
    "failed jobs and the longest-unchanged jobs in flight. Needs the admin token, not an API key.",
    responses={200: OpsOverview}, errors=ADMIN_ERRORS, auth="admin",
)  # fmt: skip
def overview() -> OpsOverview:
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
            OpsStage(
                stage=lat.stage,
                queue=settings.queue(lat.stage),
                ready=q.ready if q else None,
                unacked=q.unacked if q else None,
                consumers=q.consumers if q else None,
                dead_letters=q.dead if q else None,
                delayed=q.delayed if q else None,
                waiting=w.count,
                oldest_waiting_seconds=round(w.oldest_seconds, 3),
                done=lat.done,
                per_minute=round(lat.per_minute, 3),
                p50_seconds=lat.p50,
                p99_seconds=lat.p99,
            )
        )
    return OpsOverview(
        generated_at=iso(now),
        latency_window_seconds=LATENCY_WINDOW.total_seconds(),
        health_window_seconds=HEALTH_WINDOW.total_seconds(),
        broker_error=broker_error,
        stages=stages,
        uploads_open=open_uploads,
        failures_by_code=failures,
        failed_jobs=failed,
        in_flight_jobs=in_flight,
        webhook_endpoints=[OpsEndpoint(**{**e.__dict__, "last_attempt_at": iso(e.last_attempt_at)}) for e in endpoints],
    )


@bp.post("/v1/ops/jobs/<job_id:job_id>/retry")
@operation(
    "retryOpsJob", tags=["ops"], summary="Send a failed job back to the stage it failed in",
    description="Any tenant's job. A job that failed before its file was stored has had its chunks removed: "
    "409 job_not_retryable (the client must upload it again).",
    responses={202: OpsRetried},
    errors={**ADMIN_ERRORS, 404: ["ops_disabled", "job_not_found"], 409: ["job_not_failed", "job_not_retryable"],
            503: ["broker_unavailable"]},
    auth="admin",
)  # fmt: skip
def retry(job_id: str) -> tuple[OpsRetried, int]:
    """Send a failed job back to the stage it failed in (409 when its bytes are gone)."""
    require_admin()
    stage = retry_job(job_id)
    return OpsRetried(job_id=job_id, status="processing", stage=stage), 202


@bp.delete("/v1/ops/jobs/<job_id:job_id>")
@operation(
    "cancelOpsJob", tags=["ops"], summary="Cancel any tenant's job that has not ended",
    responses={202: OpsCancelled},
    errors={**ADMIN_ERRORS, 404: ["ops_disabled", "job_not_found"], 409: ["job_finished"], 503: ["broker_unavailable"]},
    auth="admin",
)  # fmt: skip
def cancel(job_id: str) -> tuple[OpsCancelled, int]:
    """Cancel any tenant's job that has not ended (409 once it has)."""
    require_admin()
    with read_scope() as session:
        job = jobs.load_job(session, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}", code="job_not_found")
        tenant = job.tenant_id
    cancel_job(tenant, job_id)
    return OpsCancelled(job_id=job_id, status="cancelled"), 202
