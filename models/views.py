"""The public JSON shape of a job: what ``GET /v1/jobs/{id}`` shows and what a webhook carries.

It lives here, not in web/, because the notify stage sends the very same shape: :class:`JobView`
is both the API's response model and the ``data`` of every webhook event, so the OpenAPI
document's ``webhooks`` describe exactly what consumers receive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.orm import Session

from models.db import of_tenant
from models.delivery import WebhookEvent, WebhookState
from models.errors import NotFound
from models.fastread import FastRead
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


def job_view(job: Job | Row[*tuple[Any, ...]], webhook_state: WebhookState | None) -> JobView:
    """The job as clients see it, from its ORM object or a row of :data:`VIEW_COLUMNS`."""
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
        error=JobError(code=job.error_code, message=job.error_message) if job.error_code is not None else None,
        metadata=job.meta or {},
        webhook=webhook,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
    )


_jobs, _events = Job.__table__.c, WebhookEvent.__table__.c
#: The columns a job view shows, as plain table columns (no ORM entity to load or track).
VIEW_COLUMNS = (_jobs.id, _jobs.upload_id, _jobs.filename, _jobs.content_type, _jobs.detected_type, _jobs.kind,
                _jobs.size, _jobs.sha256, _jobs.status, _jobs.stage, _jobs.progress, _jobs.attempts,
                _jobs.error_code, _jobs.error_message, _jobs.metadata.label("meta"), _jobs.webhook_url,
                _jobs.created_at, _jobs.started_at, _jobs.completed_at)  # fmt: skip


def _newest_event(column: Any) -> Any:
    """A column of the job's newest webhook event, as a correlated scalar subquery."""
    return (
        select(column).where(_events.job_id == _jobs.id).order_by(_events.created_at.desc()).limit(1)
    ).scalar_subquery()


#: The status read (``GET /v1/jobs/{id}``): one Core select of the shown columns and the newest
#: webhook event's state, instead of an ORM load of the job and a second query for its events.
_STATUS_QUERY = select(*VIEW_COLUMNS, _newest_event(_events.status).label("webhook_status"),
                       _newest_event(_events.attempts).label("webhook_attempts"), _jobs.tenant_id)  # fmt: skip


#: The same, for one job, built once, so each read skips building the statement and its cache key.
#: The job's tenant is checked on the row (``models.db.of_tenant`` says why).
_STATUS_BY_ID = _STATUS_QUERY.where(_jobs.id == bindparam("job_id"))
#: The same, run on the driver's own connection (``GET /v1/jobs/{id}``, the endpoint clients poll).
_STATUS_READ = FastRead(_STATUS_BY_ID)


def read_job_view(session: Session | Connection, tenant_id: str, job_id: str) -> JobView:
    """The tenant's job as clients see it, in one round trip within ``session``.

    Raises:
        NotFound: no such job for this tenant (also another tenant's).
    """
    return _view_of(of_tenant(session.execute(_STATUS_BY_ID, {"job_id": job_id}).one_or_none(), tenant_id), job_id)


def job_status(tenant_id: str, job_id: str) -> JobView:
    """:func:`read_job_view` outside any session, in the least CPU (``models.fastread``).

    Raises:
        NotFound: no such job for this tenant (also another tenant's).
    """
    return _view_of(of_tenant(_STATUS_READ.one_or_none(job_id=job_id), tenant_id), job_id)


def _view_of(row: Any, job_id: str) -> JobView:
    if row is None:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    state = None if row.webhook_status is None else WebhookState(row.webhook_status, row.webhook_attempts)
    return job_view(row, state)
