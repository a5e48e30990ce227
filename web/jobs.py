"""Jobs: one-shot and batch uploads, status, listing, results, downloads, cancel, deliveries."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, redirect, request, stream_with_context
from flask.typing import ResponseReturnValue

from actors.cancel import cancel_job
from actors.metrics import UPLOADS
from actors.notify import deliver_webhook
from actors.pipeline import start_jobs
from actors.storage import content_disposition, open_store
from models import delivery, quota, staging
from models import job as jobs
from models import upload as uploads
from models.db import read_scope, session_scope
from models.errors import BadRequest, Conflict, Invalid, NotFound, TooLarge
from models.settings import current_settings as settings
from models.views import job_view
from web import schemas
from web.auth import download_url, require_tenant, tenant_id
from web.staging_io import HashingWriter, temp_path
from web.uploads import check_webhook_url

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
bp.before_request(require_tenant)

#: Page size limits of ``GET /v1/jobs``.
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def _view(session: Any, job: jobs.Job) -> dict[str, Any]:
    return job_view(job, delivery.webhook_states(session, [job.id]).get(job.id))


@bp.post("")
def create_batch() -> ResponseReturnValue:
    """One or more ``file`` parts in multipart/form-data, streamed straight to staging."""
    if request.mimetype != "multipart/form-data":
        raise BadRequest("send multipart/form-data with one or more 'file' parts", code="unsupported_media_type")
    cfg = settings()
    incoming = Path(cfg.staging_dir) / "incoming"
    writers: list[HashingWriter] = []

    def stream_factory(
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None,
        content_length: int | None = None,
    ) -> HashingWriter:
        if len(writers) >= cfg.max_files_per_request:
            raise TooLarge(f"at most {cfg.max_files_per_request} files per request", code="too_many_files")
        writer = HashingWriter(temp_path(incoming, secrets.token_hex(8)))
        writers.append(writer)
        return writer

    try:
        request.max_content_length = cfg.max_request_size
        # Werkzeug's form parser asks the request for a file per part: write each one to the
        # staging disk (hashing as it goes) instead of a temporary file that would be copied.
        request._get_file_stream = stream_factory  # type: ignore[method-assign, assignment]
        parts = request.files.getlist("file")
        if not parts:
            raise Invalid("no 'file' part in the form", code="missing_file")
        webhook_url = check_webhook_url(request.form.get("webhook_url") or None)
        metadata = _form_metadata(request.form.get("metadata"))
        ocr = request.form.get("ocr") or "auto"
        created = []
        with session_scope() as session:
            quota.reserve_jobs(session, tenant_id(), cfg, len(parts))
            for part in parts:
                writer = writers[writers.index(part.stream)]  # type: ignore[arg-type]
                quota.reserve_upload(session, tenant_id(), cfg, writer.size, opens=False)
                upload = uploads.create_single_chunk_upload(
                    session,
                    tenant_id(),
                    cfg,
                    filename=schemas.filename(part.filename),
                    size=writer.size,
                    sha256=writer.sha256,
                    content_type=part.mimetype or None,
                    webhook_url=webhook_url,
                    metadata=metadata,
                    ocr=ocr,
                )
                if writer.size:
                    writer.finish(staging.chunk_path(cfg.staging_dir, upload.id, 0), durable=True)
                else:
                    writer.discard()
                job = jobs.create_job(session, upload)
                created.append({"job_id": job.id, "upload_id": upload.id, "filename": upload.filename})
    finally:
        for writer in writers:
            if writer.path.exists():
                writer.discard()
    UPLOADS.labels("opened").inc(len(created))
    UPLOADS.labels("completed").inc(len(created))
    start_jobs([entry["job_id"] for entry in created])  # the broker down: the sweeper publishes them
    for entry in created:
        entry["status"] = jobs.QUEUED
    return {"jobs": created, "total": len(created)}, 202


def _form_metadata(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        return schemas.metadata(json.loads(raw))
    except ValueError:
        raise Invalid("metadata must be a JSON object", code="invalid_field", details={"field": "metadata"}) from None


@bp.get("")
def index() -> ResponseReturnValue:
    status = request.args.get("status")
    if status is not None and status not in (jobs.QUEUED, jobs.PROCESSING, *jobs.TERMINAL):
        raise BadRequest(f"unknown status {status!r}", code="invalid_query")
    limit = schemas.int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    with read_scope() as session:
        rows, cursor = jobs.list_jobs(
            session, tenant_id(), status=status, limit=limit, cursor=request.args.get("cursor")
        )
        states = delivery.webhook_states(session, [job.id for job in rows])
        return {"jobs": [job_view(job, states.get(job.id)) for job in rows], "next_cursor": cursor}


@bp.get("/<job_id>")
def show(job_id: str) -> ResponseReturnValue:
    with read_scope() as session:
        return _view(session, jobs.get_job(session, tenant_id(), job_id, view_only=True))


@bp.delete("/<job_id>")
def cancel(job_id: str) -> ResponseReturnValue:
    job = cancel_job(tenant_id(), job_id)
    return {"job_id": job.id, "status": job.status}, 202


@bp.get("/<job_id>/result")
def result(job_id: str) -> ResponseReturnValue:
    with read_scope() as session:
        job = jobs.get_job(session, tenant_id(), job_id)
        if job.status != jobs.COMPLETED or job.result is None:
            raise Conflict(f"the job is {job.status}", code="not_ready", details={"status": job.status})
        out = dict(job.result)
    out["object"] = {**out["object"], "url": download_url("jobs.download", job_id)}
    out["derivatives"] = [
        {**d, "url": download_url("jobs.derivative", job_id, d["name"])} for d in out.get("derivatives", [])
    ]
    return out


def _stored_object(job_id: str, name: str | None) -> tuple[str, str, str]:
    """Key, filename and content type of the original (``name`` None) or a derivative."""
    with read_scope() as session:
        job = jobs.get_job(session, tenant_id(), job_id)
        if job.object_key is None or job.uploaded_at is None:
            raise Conflict("the file is not stored yet", code="not_ready", details={"status": job.status})
        if name is None:
            return job.object_key, job.filename, job.detected_type or "application/octet-stream"
        for d in (job.result or {}).get("derivatives", []):
            if d["name"] == name:
                return d["key"], d["filename"], d["content_type"]
    raise NotFound(f"no derivative {name!r}", code="derivative_not_found")


def _serve(key: str, filename: str, content_type: str) -> ResponseReturnValue:
    """A short-lived presigned redirect on S3; a stream from the filesystem store."""
    cfg = settings()
    store = open_store(cfg.storage_url, cfg.storage_public_url)
    url = store.presigned_get(key, cfg.presign_ttl_seconds, filename)
    if url is not None:
        return redirect(url, code=302)
    # content_type, not mimetype: Flask would append a second "; charset=utf-8" to a text type.
    response = Response(stream_with_context(store.iter_object(key)), content_type=content_type)
    response.headers["Content-Disposition"] = content_disposition(filename)
    return response


@bp.get("/<job_id>/download")
def download(job_id: str) -> ResponseReturnValue:
    return _serve(*_stored_object(job_id, None))


@bp.get("/<job_id>/derivatives/<name>")
def derivative(job_id: str, name: str) -> ResponseReturnValue:
    return _serve(*_stored_object(job_id, name))


@bp.get("/<job_id>/deliveries")
def deliveries(job_id: str) -> ResponseReturnValue:
    with read_scope() as session:
        jobs.get_job(session, tenant_id(), job_id)
        rows = delivery.attempts_of_job(session, job_id)
        return {
            "deliveries": [
                {"webhook_id": event.id, "type": event.type, **attempt.to_public()} for event, attempt in rows
            ]
        }


@bp.post("/<job_id>/deliveries")
def replay(job_id: str) -> ResponseReturnValue:
    """Queue the job's last event to be sent again now (same webhook-id, fresh timestamp and signature).

    The delivery runs on a webhook worker, not in this request: a slow consumer must not hold an
    API thread. Replays are throttled: by the ``replay`` rate limit, and an event already queued
    to go now is not queued twice (its endpoint's breaker and destination cap still apply).
    """
    with session_scope() as session:
        jobs.get_job(session, tenant_id(), job_id)
        event = delivery.latest_event(session, job_id)
        if event is None:
            raise Conflict("the job has no webhook event yet", code="no_event")
        queued = event.status == delivery.PENDING and event.next_attempt_at is None
        event.status, event.next_attempt_at = delivery.PENDING, None
        event_id, event_type = event.id, event.type
    if not queued:
        deliver_webhook.send(event_id)
    return {"webhook_id": event_id, "type": event_type, "status": delivery.PENDING}, 202
