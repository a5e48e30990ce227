"""The public JSON shape of a job: what ``GET /v1/jobs/{id}`` shows and what a webhook carries.

It lives here, not in web/, because the notify stage sends the very same shape: :class:`JobView`
is both the API's response model and the ``data`` of every webhook event, so the OpenAPI
document's ``webhooks`` describe exactly what consumers receive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from models.delivery import WebhookState
from models.job import Job


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


#: Names clients use for the types chute detects.
MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "application/x-pdf": "application/pdf",
                "image/x-png": "image/png"}  # fmt: skip


#: Types whose bytes are plain text, so detecting text/plain does not contradict them.
TEXT_BASED = frozenset({"application/json", "application/xml", "application/javascript", "application/x-ndjson",
                        "application/yaml", "application/x-yaml", "application/toml", "application/csv",
                        "application/sql"})  # fmt: skip


def type_mismatch(declared: str | None, detected: str | None) -> bool:
    """True when the client's declared type says something the bytes contradict."""
    if not declared or not detected or detected == "application/octet-stream":
        return False
    declared = declared.split(";", 1)[0].strip().lower()
    declared = MIME_ALIASES.get(declared, declared)
    if declared == "application/octet-stream":
        return False
    if detected == "text/plain":
        text_based = declared.startswith("text/") or declared in TEXT_BASED or declared.endswith(("+json", "+xml"))
        return not text_based
    return declared != detected


#: A UTC time as ISO 8601 with ``Z``, written by :func:`iso` (webhook bodies stay byte-identical).
Timestamp = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
#: A job's id pattern (``models.ids``).
JOB_ID = r"^job_[0-9a-f]{24}$"
#: An upload's id pattern.
UPLOAD_ID = r"^upl_[0-9a-f]{24}$"


class JobError(BaseModel):
    """Why a job failed: a stable code (``checksum_mismatch``, ``corrupt_file``, …) and a message."""

    code: str
    message: str | None


class WebhookSummary(BaseModel):
    """The job's webhook delivery: ``waiting`` until the job ends, then the newest event's state."""

    status: Literal["waiting", "pending", "delivered", "failed", "gone"]
    attempts: Annotated[int, Field(ge=0)]


class JobView(BaseModel):
    """A job as clients see it (small: no page text, so webhooks stay under 20 KB)."""

    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(pattern=JOB_ID)]
    upload_id: Annotated[str, Field(pattern=UPLOAD_ID)]
    filename: str
    content_type: str | None = Field(description="the type the client declared")
    detected_type: str | None = Field(description="the type found in the file's bytes, once assembled")
    type_mismatch: bool = Field(description="the declared type says something the bytes contradict")
    kind: Literal["pdf", "image", "other"] | None
    size: Annotated[int, Field(ge=0)]
    sha256: str | None
    status: Literal["queued", "processing", "completed", "failed", "cancelled"]
    stage: Literal["assemble", "upload", "extract", "notify"] | None = Field(description="while processing")
    progress: Annotated[float, Field(ge=0, le=1, description="0..1; never goes backwards within an attempt")]
    attempts: Annotated[int, Field(ge=0, description="stage runs (3 for a clean run)")]
    error: JobError | None
    metadata: dict[str, Any] = Field(description="the client's own metadata, as sent")
    webhook: WebhookSummary | None = Field(description="null when the job has no webhook_url")
    created_at: Timestamp
    started_at: Timestamp | None
    completed_at: Timestamp | None


def job_view(job: Job, webhook_state: WebhookState | None) -> JobView:
    """The job as clients see it."""
    if job.webhook_url is None:
        webhook: WebhookSummary | None = None
    elif webhook_state is None:
        webhook = WebhookSummary(status="waiting", attempts=0)
    else:
        webhook = WebhookSummary(status=webhook_state.status, attempts=webhook_state.attempts)  # type: ignore[arg-type]
    return JobView(
        job_id=job.id,
        upload_id=job.upload_id,
        filename=job.filename,
        content_type=job.content_type,
        detected_type=job.detected_type,
        type_mismatch=type_mismatch(job.content_type, job.detected_type),
        kind=job.kind,  # type: ignore[arg-type]
        size=job.size,
        sha256=job.sha256,
        status=job.status,  # type: ignore[arg-type]
        stage=job.stage if job.status == "processing" else None,  # type: ignore[arg-type]
        progress=round(job.progress, 4),
        attempts=job.attempts,
        error=JobError(**job.error) if job.error is not None else None,
        metadata=job.meta or {},
        webhook=webhook,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
    )
