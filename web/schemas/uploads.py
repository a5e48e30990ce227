"""Chunked uploads' request and response shapes; every string bounded like the column it lands in."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from models.settings import Settings
from models.views import JOB_ID, UPLOAD_ID, Timestamp
from web.schemas.common import ApiModel, Filename, HeaderModel, SafeStr

#: A media type as a client declares it: printable ASCII, as long as its column.
CONTENT_TYPE = r"^[\x21-\x7e][\x20-\x7e]{0,254}$"
ContentType = Annotated[str, Field(min_length=1, max_length=255, pattern=CONTENT_TYPE)]
#: A hex SHA-256 digest (stored lower case).
SHA256_HEX = r"^[0-9a-fA-F]{64}$"
_SHA256_HEX = re.compile(SHA256_HEX)


def _sha256_hex(value: str) -> str:
    if not _SHA256_HEX.fullmatch(value):
        raise PydanticCustomError("invalid_sha256", "sha256 must be 64 hex digits")
    return value.lower()


Sha256Hex = Annotated[str, AfterValidator(_sha256_hex), Field(json_schema_extra={"pattern": SHA256_HEX})]
#: A webhook URL: http(s), printable ASCII; the SSRF guard checks where it points when the job is created.
#: (The length is in the pattern, not maxLength, so a fuzzer's longest valid string is a URL.)
WEBHOOK_URL = r"^[hH][tT][tT][pP][sS]?://[\x21-\x7e]{1,1990}$"
WebhookUrl = Annotated[str, Field(pattern=WEBHOOK_URL)]
#: A metadata key: short and plain, so it can be shown and indexed anywhere.
METADATA_KEY = r"^[A-Za-z0-9_.:-]+$"
MetadataKey = Annotated[str, Field(min_length=1, max_length=40, pattern=METADATA_KEY)]
#: A metadata value: a short safe string, a finite number or a boolean (leave a key out for "none").
MetadataValue = Annotated[SafeStr, Field(max_length=500)] | Annotated[int, Field(ge=-(2**53), le=2**53)] | float | bool


#: The client's own flat object, carried to the job and its webhooks: at most 16 keys.
def _keys_by_name(schema: dict[str, Any]) -> None:
    """pydantic states key patterns as ``patternProperties``, which lets other keys through: say
    ``propertyNames`` and ``additionalProperties`` instead, which is what validation does."""
    for pattern, values in schema.pop("patternProperties", {}).items():
        schema["additionalProperties"] = values
        schema.setdefault("propertyNames", {})["pattern"] = pattern


Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16, json_schema_extra=_keys_by_name)]
#: Takes an integer also when JSON spells it 1.0 (JSON Schema's ``integer`` includes it); never "1".
INTEGRAL = BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)
#: Largest file size anyone may declare; the setting ``max_upload_size`` is the real limit and the
#: document served by a running chute states it.
#: What an upload may ask of OCR.
OcrMode = Literal["auto", "always", "never"]
MAX_SIZE = 2**53
#: The RFC 9530 Content-Digest chute checks: one sha-256 entry (32 bytes in padded base64). Other
#: algorithms are refused rather than ignored, so a client never believes a digest was checked.
CONTENT_DIGEST = r"^sha-256=:[A-Za-z0-9+/]{43}=:$"
_CONTENT_DIGEST = re.compile(CONTENT_DIGEST)
_SHA256_IN_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")


def _digest_shape(value: str) -> str:
    if not _CONTENT_DIGEST.fullmatch(value):
        raise PydanticCustomError("invalid_digest", "Content-Digest must carry one sha-256=:<base64 of 32 bytes>:")
    return value


class UploadCreate(ApiModel):
    """Open a chunked upload: chute answers with the chunk layout to send."""

    filename: Filename
    size: Annotated[int, Field(ge=0, le=MAX_SIZE, description="the whole file's size in bytes"), INTEGRAL]
    content_type: ContentType | None = None
    sha256: Sha256Hex | None = Field(default=None, description="the whole file's digest, checked at assemble")
    chunk_size: Annotated[int, Field(ge=1, le=MAX_SIZE), INTEGRAL] | None = Field(
        default=None, description="bytes per chunk (the last may be shorter); default: the server's setting"
    )
    webhook_url: WebhookUrl | None = Field(
        default=None, description="where the job's ending is POSTed; must not point inside the network"
    )
    metadata: Metadata | None = Field(
        default=None, description="your own flat object (≤ 16 keys), returned on the job and in webhooks"
    )
    ocr: OcrMode = Field(
        default="auto",
        description="OCR of pages and images without text: auto (those that look like documents), always, never",
    )


class UploadCreated(ApiModel):
    """The chunk layout of a new upload."""

    upload_id: Annotated[str, Field(pattern=UPLOAD_ID)]
    chunk_size: int
    chunk_count: int
    status: Literal["receiving"]
    expires_at: Timestamp


class UploadView(ApiModel):
    """An upload and what has arrived of it, so a client can resume."""

    upload_id: Annotated[str, Field(pattern=UPLOAD_ID)]
    filename: str
    content_type: str | None
    size: int
    sha256: str | None
    chunk_size: int
    chunk_count: int
    status: Literal["receiving", "complete", "expired", "cancelled"]
    received: list[int] = Field(description="indexes of the chunks stored")
    missing: list[int] = Field(description="indexes still to send")
    bytes_received: int
    job_id: Annotated[str, Field(pattern=JOB_ID)] | None = Field(description="set once the upload is complete")
    metadata: dict[str, object]
    created_at: Timestamp
    expires_at: Timestamp


class ChunkHeaders(HeaderModel):
    """A chunk's optional RFC 9530 digest; a mismatch stores nothing."""

    content_digest: (
        Annotated[str, AfterValidator(_digest_shape), Field(json_schema_extra={"pattern": CONTENT_DIGEST})] | None
    ) = Field(
        default=None,
        alias="Content-Digest",
        description="`sha-256=:<base64 of the chunk's SHA-256>:` (RFC 9530)",
        examples=["sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"],
    )

    def sha256(self) -> str | None:
        """The declared sha-256 as hex, or None."""
        if self.content_digest is None:
            return None
        match = _SHA256_IN_DIGEST.search(self.content_digest)
        assert match is not None  # the pattern guarantees one
        return base64.b64decode(match.group(1)).hex()


class ChunkStored(ApiModel):
    """A chunk stored: its index, size and SHA-256 (hex)."""

    index: int
    size: int
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class UploadCompleted(ApiModel):
    """The upload's job, queued (or as it is now, when complete is called again)."""

    job_id: Annotated[str, Field(pattern=JOB_ID)]
    upload_id: Annotated[str, Field(pattern=UPLOAD_ID)]
    status: Literal["queued", "processing", "completed", "failed", "cancelled"]


class UploadCancelled(ApiModel):
    """The upload after cancelling, and the job cancelled with it, if it had one."""

    upload_id: Annotated[str, Field(pattern=UPLOAD_ID)]
    status: Literal["receiving", "complete", "expired", "cancelled"]
    job_id: Annotated[str, Field(pattern=JOB_ID)] | None


def document_limits(document: dict[str, Any], settings: Settings) -> None:
    """Write this server's upload limits into the document's ``UploadCreate`` schema."""
    properties = document["components"]["schemas"].get("UploadCreate", {}).get("properties", {})
    if "size" in properties:
        properties["size"]["maximum"] = settings.max_upload_size
    for branch in properties.get("chunk_size", {}).get("anyOf", []):
        if branch.get("type") == "integer":
            branch["minimum"], branch["maximum"] = settings.min_chunk_size, settings.max_chunk_size
