"""Chunked, resumable uploads: create, put chunks in any order, resume, complete, cancel."""

from __future__ import annotations

import os

from flask import Blueprint, current_app, request, url_for

from actors.cancel import cancel_upload
from actors.metrics import UPLOADS
from actors.pipeline import publish_job
from actors.url_guard import REFUSED, UrlGuard
from models import job as jobs
from models import quota, staging
from models import upload as uploads
from models.db import read_scope, session_scope
from models.errors import Conflict, Invalid
from models.settings import current_settings as settings
from models.views import JobView, read_job_view
from web.auth import require_tenant, tenant_id
from web.contract import Body, Reply, operation
from web.schemas.uploads import (
    ChunkHeaders,
    ChunkStored,
    UploadCancelled,
    UploadCompleted,
    UploadCreate,
    UploadCreated,
    UploadView,
)
from web.scope import admit_upload
from web.staging_io import HashingWriter, body_stream, copy_body, temp_path

bp = Blueprint("uploads", __name__, url_prefix="/v1/uploads")
bp.before_request(require_tenant)

#: Links from an upload to the calls a client makes next (schemathesis' stateful phase follows them).
UPLOAD_LINKS = {
    "GetUpload": {"operationId": "getUpload", "parameters": {"upload_id": "$response.body#/upload_id"}},
    "PutChunk": {"operationId": "putChunk", "parameters": {"upload_id": "$response.body#/upload_id", "index": "0"}},
    "CompleteUpload": {"operationId": "completeUpload", "parameters": {"upload_id": "$response.body#/upload_id"}},
    "CancelUpload": {"operationId": "cancelUpload", "parameters": {"upload_id": "$response.body#/upload_id"}},
}


def job_links(pointer: str) -> dict[str, dict[str, object]]:
    """Links from a response holding a job id (at JSON ``pointer``) to the calls that read the job."""
    job_id = {"job_id": f"$response.body#{pointer}"}
    return {
        "GetJob": {"operationId": "getJob", "parameters": job_id},
        "GetJobResult": {"operationId": "getJobResult", "parameters": job_id},
        "DownloadJobFile": {"operationId": "downloadJobFile", "parameters": job_id},
        "ListDeliveries": {"operationId": "listDeliveries", "parameters": job_id},
        "CancelJob": {"operationId": "cancelJob", "parameters": job_id},
    }


#: Errors of every operation on an existing upload.
UPLOAD_ERRORS = {404: ["upload_not_found"]}


def check_webhook_url(url: str | None) -> str | None:
    """Refuse a webhook URL that points inside the network (422) when the job is created."""
    if url is None:
        return None
    guard: UrlGuard = current_app.config["CHUTE_URL_GUARD"]
    guard.check_url(url)
    return url


def upload_view(upload: uploads.Upload, received: list[uploads.ChunkEntry]) -> UploadView:
    return UploadView(
        upload_id=upload.id,
        filename=upload.filename,
        content_type=upload.content_type,
        size=upload.size,
        sha256=upload.sha256,
        chunk_size=upload.chunk_size,
        chunk_count=upload.chunk_count,
        status=upload.status,  # type: ignore[arg-type]
        received=[c.index for c in received],
        missing=uploads.missing_indexes(upload.chunk_count, (c.index for c in received)),
        bytes_received=sum(c.size for c in received),
        job_id=upload.job_id,
        metadata=upload.meta or {},
        created_at=upload.created_at,
        expires_at=upload.expires_at,
    )


@bp.post("")
@operation(
    "createUpload",
    tags=["uploads"],
    summary="Open a chunked, resumable upload",
    description="Fixes the chunk layout; send the chunks in any order (in parallel if you like), then "
    "complete the upload. `size` is at most the server's `max_upload_size` and `chunk_size` within its "
    "bounds (both stated in this document); an upload has at most 100,000 chunks.",
    body=UploadCreate,
    responses={
        201: Reply(UploadCreated, "the upload is open", headers={"Location": "the upload's URL"}, links=UPLOAD_LINKS)
    },
    errors={
        403: ["token_fixed_field", "token_files_exhausted"],
        413: ["file_too_large", "token_size_exhausted"],
        415: ["type_not_allowed"],
        422: [
            "invalid_chunk_size", "too_many_chunks", "invalid_filename", "invalid_sha256", REFUSED
        ],
        429: ["open_uploads_quota_exceeded", "staged_bytes_quota_exceeded"],
    },
)
def create(body: UploadCreate) -> tuple[UploadCreated, int, dict[str, str]]:
    with session_scope() as session:
        quota.reserve_upload(session, tenant_id(), settings(), body.size)
        scoped = admit_upload(session, size=body.size, content_type=body.content_type,
                              webhook_url=check_webhook_url(body.webhook_url), metadata=body.metadata)  # fmt: skip
        upload = uploads.create_upload(
            session,
            tenant_id(),
            settings(),
            filename=body.filename,
            size=body.size,
            content_type=body.content_type,
            sha256=body.sha256,
            chunk_size=body.chunk_size,
            ocr=body.ocr,
            **scoped,
        )
        created = UploadCreated(
            upload_id=upload.id,
            chunk_size=upload.chunk_size,
            chunk_count=upload.chunk_count,
            status="receiving",
            expires_at=upload.expires_at,
        )
    UPLOADS.labels("opened").inc()
    return created, 201, {"Location": url_for("uploads.show", upload_id=created.upload_id)}


@bp.put("/<upload_id:upload_id>/chunks/<chunk_index:index>")
@operation(
    "putChunk",
    tags=["uploads"],
    summary="Send one chunk",
    description="The chunk's raw bytes: exactly `chunk_size` bytes, except the last chunk which holds the "
    "rest. Streamed to disk while hashed; stored only if its size and `Content-Digest` match. Chunks may "
    "arrive in any order and in parallel; re-sending a chunk before completion replaces it.",
    body=Body("application/octet-stream", "the chunk's bytes"),
    headers=ChunkHeaders,
    responses={200: Reply(ChunkStored, "the chunk is stored")},
    errors={
        400: ["invalid_digest"],
        404: ["upload_not_found", "chunk_not_found"],
        409: ["upload_complete", "upload_expired", "upload_cancelled"],
        413: ["body_too_large"],
        422: ["chunk_size_mismatch", "checksum_mismatch"],
    },
)
def put_chunk(upload_id: str, index: int, headers: ChunkHeaders) -> ChunkStored:
    """Stream one chunk to staging while hashing it; store it only if size and digest match."""
    declared = headers.sha256()
    upload = uploads.chunk_target(tenant_id(), upload_id)
    uploads.ensure_chunked(upload)
    uploads.ensure_receiving(upload)
    expected = uploads.check_chunk_index(upload, index)
    if request.content_length is not None and request.content_length != expected:
        raise Invalid(
            f"chunk {index} must be {expected} bytes, not {request.content_length}",
            code="chunk_size_mismatch",
            details={"expected": expected, "received": request.content_length},
        )
    directory = staging.upload_dir(settings().staging_dir, upload_id)
    writer = HashingWriter(temp_path(directory, f"{index:06d}"))
    try:
        copy_body(body_stream(request.environ, request.stream), writer, expected)
        if writer.size != expected:
            raise Invalid(
                f"chunk {index} must be {expected} bytes, got {writer.size}",
                code="chunk_size_mismatch",
                details={"expected": expected, "received": writer.size},
            )
        if declared is not None and declared != writer.sha256:
            raise Invalid(
                "the chunk does not match its Content-Digest",
                code="checksum_mismatch",
                details={"index": index, "expected": declared, "actual": writer.sha256},
            )
        with session_scope() as session:
            # Under the upload's row lock, so a chunk cannot land after complete took the manifest.
            target = uploads.lock_chunk_target(session, tenant_id(), upload_id)
            uploads.ensure_receiving(target)
            writer.finish(staging.chunk_path(settings().staging_dir, upload_id, index))
            uploads.record_chunk(session, target, index, writer.size, writer.sha256)
    finally:
        if os.path.exists(writer.path):
            writer.discard()
    return ChunkStored(index=index, size=writer.size, sha256=writer.sha256)


@bp.get("/<upload_id:upload_id>")
@operation(
    "getUpload",
    tags=["uploads"],
    summary="What has arrived of an upload",
    description="The chunks received and missing, so a client can resume; `job_id` once complete.",
    responses={200: Reply(UploadView, "the upload")},
    errors=UPLOAD_ERRORS,
)
def show(upload_id: str) -> UploadView:
    with read_scope() as session:
        upload = uploads.get_upload(session, tenant_id(), upload_id)
        return upload_view(upload, uploads.chunk_manifest(session, upload_id))


@bp.post("/<upload_id:upload_id>/complete")
@operation(
    "completeUpload",
    tags=["uploads"],
    summary="Complete an upload and start its job",
    description="Creates the upload's job and queues it. Idempotent: calling it again returns the same job.",
    responses={
        202: Reply(
            UploadCompleted, "the job is queued", headers={"Location": "the job's URL"}, links=job_links("/job_id")
        )
    },
    errors={
        404: ["upload_not_found"],
        409: ["incomplete_upload", "upload_expired", "upload_cancelled"],
        503: ["broker_unavailable"],
    },
)
def complete(upload_id: str) -> tuple[UploadCompleted, int, dict[str, str]]:
    """Create the upload's job (once: calling again returns the same job) and start it."""
    with session_scope() as session:
        upload = uploads.get_upload(session, tenant_id(), upload_id, for_update=True)
        if upload.job_id is not None:
            job = jobs.load_job(session, upload.job_id)
            assert job is not None
            job_id, status, enqueued = job.id, job.status, job.enqueued_at is not None
        else:
            uploads.ensure_chunked(upload)
            uploads.ensure_receiving(upload)
            received = (c.index for c in uploads.chunk_manifest(session, upload_id))
            missing = uploads.missing_indexes(upload.chunk_count, received)
            if missing:
                raise Conflict(
                    f"{len(missing)} of {upload.chunk_count} chunks are missing",
                    code="incomplete_upload",
                    details={"missing": missing[:1000], "missing_count": len(missing)},
                )
            # Durable under this upload's lock, before the tenant's, which every submit of the
            # tenant waits for (an upload's chunks can take long to write back):
            staging.sync_upload(settings().staging_dir, upload_id)
            quota.reserve_jobs(session, tenant_id(), settings())
            job_id, status, enqueued = jobs.create_job(session, upload), jobs.QUEUED, False
            UPLOADS.labels("completed").inc()
    if not enqueued:
        publish_job(job_id)
    body = UploadCompleted(job_id=job_id, upload_id=upload_id, status=status)  # type: ignore[arg-type]
    return body, 202, {"Location": url_for("jobs.show", job_id=job_id)}


@bp.get("/<upload_id:upload_id>/status")
@operation(
    "getUploadStatus",
    tags=["uploads"],
    summary="The job of a completed upload",
    description="The same view as getJob, reached by the upload's id; 409 before the upload is complete.",
    responses={200: Reply(JobView, "the upload's job")},
    errors={404: ["upload_not_found"], 409: ["upload_not_complete"]},
)
def status(upload_id: str) -> JobView:
    with read_scope() as session:
        upload = uploads.get_upload(session, tenant_id(), upload_id)
        if upload.job_id is None:
            raise Conflict(
                f"the upload is {upload.status} and has no job yet",
                code="upload_not_complete",
                details={"status": upload.status},
            )
        return read_job_view(session, tenant_id(), upload.job_id)


@bp.delete("/<upload_id:upload_id>")
@operation(
    "cancelUpload",
    tags=["uploads"],
    summary="Cancel an upload",
    description="Removes the staged chunks; a completed upload's job is cancelled too (409 if it ended).",
    responses={202: Reply(UploadCancelled, "cancelled")},
    errors={404: ["upload_not_found"], 409: ["job_finished"], 503: ["broker_unavailable"]},
)
def cancel(upload_id: str) -> tuple[UploadCancelled, int]:
    upload, job_id = cancel_upload(tenant_id(), upload_id)
    return UploadCancelled(upload_id=upload.id, status=upload.status, job_id=job_id), 202  # type: ignore[arg-type]
