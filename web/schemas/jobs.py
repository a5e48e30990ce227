"""Jobs' request and response shapes: listing, batch upload, results, cancel, webhook deliveries."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from flask import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic_core import PydanticCustomError

from models.job import CURSOR
from models.settings import Settings
from models.views import JOB_ID, UPLOAD_ID, JobView, Timestamp
from web.contract import loads
from web.schemas.common import ApiModel, QueryModel
from web.schemas.uploads import Metadata, OcrMode, WebhookUrl

#: Page size limits of ``GET /v1/jobs``.
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
#: A page cursor, as ``next_cursor`` gives it.
_CURSOR = re.compile(CURSOR)

#: Longest ``metadata`` form field (the JSON text; its object is bounded like createUpload's).
MAX_FORM_METADATA = 16384

def _cursor_shape(value: str) -> str:
    if not _CURSOR.fullmatch(value):
        raise PydanticCustomError("invalid_cursor", "the cursor is not valid")
    return value


JobStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]


class JobListQuery(QueryModel):
    """Filters and paging of the job list."""

    status: JobStatus | None = Field(default=None, description="only jobs in this state")
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT
    cursor: Annotated[
        str,
        AfterValidator(_cursor_shape),
        Field(json_schema_extra={"pattern": CURSOR}, description="next_cursor of the previous page"),
    ] | None = None


class JobList(ApiModel):
    """A page of jobs, newest first; ``next_cursor`` is null on the last page."""

    jobs: list[JobView]
    next_cursor: str | None


class BatchForm(BaseModel):
    """The form fields beside the ``file`` parts of a one-shot upload (all optional).

    Strict, as JSON bodies are: a metadata value "10" stays a string and is bounded as one; an
    unknown field is refused (422), as in a JSON body.
    """

    model_config = ConfigDict(strict=True, extra="forbid")

    webhook_url: WebhookUrl | None = None
    metadata: Metadata | None = Field(default=None, description="a JSON object, as text")
    ocr: OcrMode = Field(default="auto", description="as in createUpload, for every file")

    @field_validator("metadata", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > MAX_FORM_METADATA:
                raise ValueError(f"metadata is over {MAX_FORM_METADATA} characters")
            try:
                return loads(value)
            except (ValueError, RecursionError):
                raise ValueError("metadata must be a JSON object") from None
        return value


#: The multipart body of ``POST /v1/jobs``, for the OpenAPI document: ``metadata`` is a JSON
#: object in its part (the multipart encoding of an object property), bounded like createUpload's.
BATCH_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
                 "description": "one part per file; its filename (1–255 safe characters) names the job"},
        "webhook_url": TypeAdapter(WebhookUrl).json_schema(),
        "metadata": TypeAdapter(Metadata).json_schema(),
        "ocr": TypeAdapter(OcrMode).json_schema(),
    },
}  # fmt: skip
#: How the form's fields are encoded in their parts.
BATCH_FORM_ENCODING: dict[str, Any] = {"metadata": {"contentType": "application/json"}}


class BatchEntry(ApiModel):
    """One file of a batch: its job, queued."""

    job_id: Annotated[str, Field(pattern=JOB_ID)]
    upload_id: Annotated[str, Field(pattern=UPLOAD_ID)]
    filename: str
    status: Literal["queued"]


class BatchCreated(ApiModel):
    """The jobs of a one-shot or batch upload, in the order of the parts."""

    jobs: list[BatchEntry]
    total: int


class JobCancelled(ApiModel):
    """The job after cancelling."""

    job_id: Annotated[str, Field(pattern=JOB_ID)]
    status: JobStatus


class StoredObject(BaseModel):
    """The original file in the object store, and chute's URL that downloads it."""

    bucket: str | None
    key: str
    size: int
    sha256: str | None
    url: str = Field(description="GET it (with your API key) for a redirect to the file or the file itself")


class DerivativeView(BaseModel):
    """A file made from the upload (thumbnail, web image, full text)."""

    name: str
    filename: str
    content_type: str
    width: int | None
    height: int | None
    size: int
    key: str
    url: str


class JobResult(BaseModel):
    """What the pipeline made of the file: where it is stored, what was extracted, derivatives."""

    object: StoredObject
    kind: Literal["pdf", "image", "other"]
    mime: str
    declared_type: str | None
    document: dict[str, Any] | None = Field(
        default=None, description="PDFs only: page_count, version, encrypted, locked, metadata, pages, tables, …"
    )
    image: dict[str, Any] | None = Field(
        default=None, description="images only: format, width, height, mode, frames, animated, exif"
    )
    ocr: Literal["done", "not_needed", "off", "unavailable", "incomplete"] | None = Field(
        default=None, description="documents and images only: what OCR did"
    )
    ocr_error: dict[str, Any] | None = Field(default=None, description="why OCR was unavailable or incomplete")
    derivatives: list[DerivativeView]

    def to_response(self) -> Response:
        """The result as stored: a key the pipeline did not write is left out, not shown as null."""
        return Response(self.model_dump_json(exclude_unset=True), mimetype="application/json")


class DeliveryAttempt(BaseModel):
    """One attempt to deliver a webhook event."""

    webhook_id: str = Field(description="the event's webhook-id header, the same on every retry")
    type: Literal["job.completed", "job.failed", "job.cancelled"]
    attempted_at: Timestamp
    url: str
    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str | None


class DeliveryList(ApiModel):
    """Every delivery attempt of the job's webhook events, oldest first."""

    deliveries: list[DeliveryAttempt]


class DeliveryQueued(ApiModel):
    """The event queued to be sent again now (same webhook-id, fresh timestamp and signature)."""

    webhook_id: str
    type: Literal["job.completed", "job.failed", "job.cancelled"]
    status: Literal["pending"]


def document_limits(document: dict[str, Any], settings: Settings) -> None:
    """Write this server's limit on files per request into the batch form's schema."""
    form = document["paths"].get("/v1/jobs", {}).get("post", {}).get("requestBody", {})
    schema = form.get("content", {}).get("multipart/form-data", {}).get("schema", {})
    if "file" in schema.get("properties", {}):
        schema["properties"]["file"]["maxItems"] = settings.max_files_per_request
