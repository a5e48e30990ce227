"""Chunked uploads' request and response shapes; every string bounded like the column it lands in."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema

from web import schemas
from web.schemas.common import ApiModel

#: A file's name as people see it: 1–255 printable characters, no path.
Filename = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(schemas.filename)]
#: A declared media type, as long as its column.
ContentType = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e][\x20-\x7e]*$")]
#: A hex SHA-256 digest (stored lower case).
Sha256Hex = Annotated[
    str, AfterValidator(schemas.sha256_hex), WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"})
]
#: A webhook URL; the SSRF guard checks where it points when the job is created.
WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^https?://[\x21-\x7e]+$")]
#: The client's own JSON object, carried to the job and its webhooks.
Metadata = Annotated[dict[str, Any], AfterValidator(schemas.metadata)]
#: What an upload may ask of OCR.
OcrMode = Literal["auto", "always", "never"]
#: Largest file size anyone may declare (the setting max_upload_size is the real limit).
MAX_SIZE = 2**53


class UploadCreate(ApiModel):
    """Open a chunked upload: chute answers with the chunk layout to send."""

    filename: Filename
    size: Annotated[int, Field(ge=0, le=MAX_SIZE, description="the whole file's size in bytes")]
    content_type: ContentType | None = None
    sha256: Sha256Hex | None = Field(default=None, description="the whole file's digest, checked at assemble")
    chunk_size: Annotated[int, Field(ge=1, le=MAX_SIZE)] | None = Field(
        default=None, description="bytes per chunk (the last may be shorter); default: the server's setting"
    )
    webhook_url: WebhookUrl | None = None
    metadata: Metadata | None = None
    ocr: OcrMode = Field(
        default="auto",
        description="OCR of pages and images without text: auto (those that look like documents), always, never",
    )


class UploadCreated(ApiModel):
    """The chunk layout of a new upload."""

    upload_id: str
    chunk_size: int
    chunk_count: int
    status: Literal["receiving"]
    expires_at: datetime
