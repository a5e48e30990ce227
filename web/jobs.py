"""Jobs: one-shot and batch uploads, status, listing, results, downloads, cancel, deliveries."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from dramatiq.errors import BrokerError
from flask import Blueprint, Response, redirect, request, stream_with_context
from flask.typing import ResponseReturnValue

from actors.cancel import cancel_job
from actors.metrics import UPLOADS
from actors.notify import deliver_webhook
from actors.pipeline import start_jobs
from actors.storage import content_disposition, open_store
from actors.url_guard import REFUSED
from models import delivery, quota, received_job, staging
from models import job as jobs
from models.db import read_scope, session_scope
from models.errors import BrokerUnavailable, Conflict, Invalid, NotFound, TooLarge, UnsupportedMediaType
from models.settings import current_settings as settings
from models.upload import FileArrival
from models.views import JobView, job_status, job_view
from web import schemas
from web.auth import download_url, require_tenant, tenant_id
from web.contract import Body, Reply, operation, parse_model
from web.schemas.jobs import (
    BATCH_FORM_ENCODING,
    BATCH_FORM_SCHEMA,
    BatchCreated,
    BatchEntry,
    BatchForm,
    DeliveryAttempt,
    DeliveryList,
    DeliveryQueued,
    JobCancelled,
    JobList,
    JobListQuery,
    JobResult,
)
from web.schemas.uploads import CONTENT_TYPE
from web.staging_io import HashingWriter, staging_space, temp_path
from web.uploads import check_webhook_url, job_links

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
bp.before_request(require_tenant)

#: Form fields (not files) of a batch upload are small: Werkzeug refuses more than this in memory (413).
MAX_FORM_MEMORY = 64 * 1024
#: Parts a batch form may have (files and fields); Werkzeug refuses more (413).
MAX_FORM_PARTS = 64
#: Errors of every operation on an existing job.
JOB_ERRORS = {404: ["job_not_found"]}
#: A redirect to the stored file or a stream of it.
DOWNLOAD_REPLIES = {
    200: Reply(None, "the file itself (filesystem store)", media_type="application/octet-stream",
               schema={"type": "string", "format": "binary"},
               headers={"Content-Disposition": "attachment; filename=…; filename*=UTF-8''…"}),
    302: Reply(None, "a short-lived presigned URL of the object store (S3)",
               headers={"Location": "the presigned URL (valid presign_ttl_seconds)"}),
}  # fmt: skip


def _checked_part(name: str | None, mimetype: str) -> tuple[str, str | None]:
    """A part's filename (basename of what old browsers send as a path) and content type, validated."""
    filename = schemas.filename(name)
    # A browser's odd guess at a type is not a declaration worth keeping (or storing).
    content_type = mimetype if mimetype and re.fullmatch(CONTENT_TYPE, mimetype) else None
    return filename, content_type


@bp.post("")
@operation(
    "createJobs",
    tags=["jobs"],
    summary="Upload whole files in one request (one-shot and batch)",
    description="multipart/form-data with one or more `file` parts, streamed to disk while hashed; each "
    "becomes a job at once. Optional `webhook_url` and `metadata` (a JSON object as text) apply to every file.",
    body=Body("multipart/form-data", "the files and options", schema=BATCH_FORM_SCHEMA, encoding=BATCH_FORM_ENCODING),
    responses={202: Reply(BatchCreated, "one queued job per file", links=job_links("/jobs/0/job_id"))},
    errors={
        413: ["too_many_files", "file_too_large", "body_too_large"],
        415: ["unsupported_media_type"],
        422: ["missing_file", "invalid_filename", "invalid_field", REFUSED],
        503: ["broker_unavailable"],
    },
)
def create_batch() -> tuple[BatchCreated, int]:
    """One or more ``file`` parts in multipart/form-data, streamed straight to staging."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("send multipart/form-data with one or more 'file' parts")
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
        request.max_form_memory_size = MAX_FORM_MEMORY
        request.max_form_parts = MAX_FORM_PARTS
        # Werkzeug's form parser asks the request for a file per part: write each one to the
        # staging disk (hashing as it goes) instead of a temporary file that would be copied.
        request._get_file_stream = stream_factory  # type: ignore[method-assign, assignment]
        parts = request.files.getlist("file")
        if not parts:
            raise Invalid("no 'file' part in the form", code="missing_file")
        form = parse_model(BatchForm, request.form.to_dict(flat=True), "form")
        assert isinstance(form, BatchForm)
        webhook_url = check_webhook_url(form.webhook_url)
        files = []
        for part in parts:
            filename, content_type = _checked_part(part.filename, part.mimetype)
            writer = writers[writers.index(part.stream)]  # type: ignore[arg-type]
            files.append((writer, FileArrival(jobs.new_job_id(), filename, writer.size, writer.sha256, content_type,
                                              webhook_url, form.metadata, form.ocr)))  # fmt: skip
        arrivals = [arrival for _, arrival in files]
        created = []
        staged: list[str] = []
        with session_scope() as session:  # its transaction begins at the lock, after the staging
            try:
                _stage(cfg.staging_dir, files, staged)
                limits = quota.lock_limits(session, tenant_id(), cfg)
                for n, arrival in enumerate(arrivals):
                    quota.check_file_size(limits, arrival.size)  # never staged as open uploads: no other quota
                    # The upload, its chunk and its job; the jobs-in-flight check goes with the
                    # first file's rows (one statement on PostgreSQL):
                    reservation = received_job.Reservation(limits, len(arrivals)) if n == 0 else None
                    received = received_job.record_received_job(session, tenant_id(), cfg, arrival, reservation)
                    created.append((arrival.job_id, received.id, received.filename))
            except BaseException:  # nothing of the request commits: neither do its files stay
                for upload_id in staged:
                    staging.remove_upload(cfg.staging_dir, upload_id)
                raise
    finally:
        for writer in writers:
            if writer.path.exists():
                writer.discard()
    UPLOADS.labels("opened").inc(len(created))
    UPLOADS.labels("completed").inc(len(created))
    start_jobs([job_id for job_id, _, _ in created])  # the broker down: the sweeper publishes them
    entries = [BatchEntry(job_id=j, upload_id=u, filename=f, status="queued") for j, u, f in created]
    return BatchCreated(jobs=entries, total=len(entries)), 202


def _stage(staging_dir: str, files: list[tuple[HashingWriter, FileArrival]], staged: list[str]) -> None:
    """Make each non-empty file durable under its upload's id, name and all, before its job's row
    commits, adding each id to ``staged`` as its file lands (the caller removes them if the
    request fails).

    Before the transaction, not inside it: the transaction holds the tenant's row lock, which
    every submit of the tenant waits for. With three fsyncs a file under it, that wait averaged
    20.8 ms a submit with 16 clients in ``bench peers``. A crash between here and the commit
    leaves staged bytes without rows, which ``actors.cleanup.remove_leftovers`` removes.
    """
    with staging_space():  # a full disk, at the fsync too, is a 507
        for writer, arrival in files:
            if not arrival.size:
                writer.discard()
                continue
            writer.finish(staging.chunk_path(staging_dir, arrival.upload_id, 0))
            staged.append(arrival.upload_id)
            staging.sync_upload(staging_dir, arrival.upload_id)


@bp.get("")
@operation(
    "listJobs",
    tags=["jobs"],
    summary="List jobs, newest first",
    description="Pages of at most `limit` jobs; pass `next_cursor` as `cursor` for the next page. "
    "A cursor is opaque: one chute did not make is 400 `invalid_cursor`.",
    query=JobListQuery,
    responses={200: Reply(JobList, "a page of jobs")},
    errors={400: ["invalid_cursor"]},
)
def index(query: JobListQuery) -> JobList:
    with read_scope() as session:
        rows, cursor = jobs.list_jobs(
            session, tenant_id(), status=query.status, limit=query.limit, cursor=query.cursor
        )
        states = delivery.webhook_states(session, [job.id for job in rows])
        return JobList(jobs=[job_view(job, states.get(job.id)) for job in rows], next_cursor=cursor)


@bp.get("/<job_id:job_id>")
@operation(
    "getJob",
    tags=["jobs"],
    summary="A job's status, stage, progress and webhook state",
    description="Poll this (or take the webhook) until `status` is completed, failed or cancelled.",
    responses={200: Reply(JobView, "the job")},
    errors=JOB_ERRORS,
)
def show(job_id: str) -> JobView:
    return job_status(tenant_id(), job_id)


@bp.delete("/<job_id:job_id>")
@operation(
    "cancelJob",
    tags=["jobs"],
    summary="Cancel a job",
    description="A stage in flight notices and stops; the job's bytes are released and its webhook says "
    "job.cancelled. A job that already ended is 409 `job_finished`.",
    responses={202: Reply(JobCancelled, "cancelled")},
    errors={404: ["job_not_found"], 409: ["job_finished"], 503: ["broker_unavailable"]},
)
def cancel(job_id: str) -> tuple[JobCancelled, int]:
    job = cancel_job(tenant_id(), job_id)
    return JobCancelled(job_id=job.id, status=job.status), 202  # type: ignore[arg-type]


@bp.get("/<job_id:job_id>/result")
@operation(
    "getJobResult",
    tags=["jobs"],
    summary="What the pipeline made of a completed job",
    description="The stored object, what was extracted (document or image) and the derivatives, each with "
    "a download URL. 409 `not_ready` until the job is completed.",
    responses={200: Reply(JobResult, "the result")},
    errors={404: ["job_not_found"], 409: ["not_ready"]},
)
def result(job_id: str) -> Response:
    with read_scope() as session:
        job = jobs.get_job(session, tenant_id(), job_id)
        if job.status != jobs.COMPLETED or job.result is None:
            raise Conflict(f"the job is {job.status}", code="not_ready", details={"status": job.status})
        out = dict(job.result)
    out["object"] = {**out["object"], "url": download_url("jobs.download", job_id)}
    out["derivatives"] = [
        {**d, "url": download_url("jobs.derivative", job_id, d["name"])} for d in out.get("derivatives", [])
    ]
    return JobResult.model_validate(out).to_response()


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


@bp.get("/<job_id:job_id>/download")
@operation(
    "downloadJobFile",
    tags=["jobs"],
    summary="Download the original file",
    description="On S3, a 302 to a short-lived presigned URL (its response names the file); on the "
    "filesystem store, the bytes themselves. 409 `not_ready` until the file is stored.",
    responses=DOWNLOAD_REPLIES,
    errors={404: ["job_not_found"], 409: ["not_ready"]},
)
def download(job_id: str) -> ResponseReturnValue:
    return _serve(*_stored_object(job_id, None))


@bp.get("/<job_id:job_id>/derivatives/<name:name>")
@operation(
    "downloadDerivative",
    tags=["jobs"],
    summary="Download a derivative (thumbnail, web image, full text)",
    description="Names are those in the result's `derivatives`; served like downloadJobFile.",
    responses=DOWNLOAD_REPLIES,
    errors={404: ["job_not_found", "derivative_not_found"], 409: ["not_ready"]},
)
def derivative(job_id: str, name: str) -> ResponseReturnValue:
    return _serve(*_stored_object(job_id, name))


@bp.get("/<job_id:job_id>/deliveries")
@operation(
    "listDeliveries",
    tags=["webhooks"],
    summary="Every webhook delivery attempt of a job",
    description="Each attempt with its answer (status code or error), duration and an excerpt of the body.",
    responses={200: Reply(DeliveryList, "the attempts, oldest first")},
    errors=JOB_ERRORS,
)
def deliveries(job_id: str) -> DeliveryList:
    with read_scope() as session:
        jobs.get_job(session, tenant_id(), job_id)
        rows = delivery.attempts_of_job(session, job_id)
        return DeliveryList(
            deliveries=[
                DeliveryAttempt(
                    webhook_id=event.id,
                    type=event.type,  # type: ignore[arg-type]
                    attempted_at=attempt.attempted_at,
                    url=attempt.url,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                    response_excerpt=attempt.response_excerpt,
                )
                for event, attempt in rows
            ]
        )


@bp.post("/<job_id:job_id>/deliveries")
@operation(
    "redeliverWebhook",
    tags=["webhooks"],
    summary="Send the job's last webhook event again now",
    description="Same webhook-id, fresh timestamp and signature. The delivery runs on a worker, not in "
    "this request. 409 `no_event` before the job has ended (or when it has no webhook_url).",
    responses={202: Reply(DeliveryQueued, "queued")},
    errors={404: ["job_not_found"], 409: ["no_event"], 503: ["broker_unavailable"]},
)
def replay(job_id: str) -> tuple[DeliveryQueued, int]:
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
        try:
            deliver_webhook.send(event_id)
        except (BrokerError, OSError, RuntimeError) as e:  # as publish_job: the client may retry
            raise BrokerUnavailable(f"the message broker is unavailable: {e}") from None
    return DeliveryQueued(webhook_id=event_id, type=event_type, status="pending"), 202  # type: ignore[arg-type]

