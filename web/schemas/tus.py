"""tus requests: they speak in headers, declared here with the rules web/tus_protocol.py applies.

Each header's pattern or range is the one the protocol layer checks, so a value the document
allows is one chute parses. What no parameter schema can state is said in the descriptions: the
relations between headers (Upload-Length or Upload-Defer-Length: 1, not both; none of them on a
final upload) and between headers and the body (its length within Upload-Length, its checksum).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from models.settings import Settings
from web.schemas.common import HeaderModel
from web.schemas.uploads import MAX_SIZE

#: Headers every answer about an upload carries.
UPLOAD_HEADERS = {
    "Tus-Resumable": "1.0.0",
    "Upload-Offset": "bytes stored so far",
}
#: Headers an answer about an upload carries depending on its state.
UPLOAD_STATE_HEADERS = {
    "Upload-Expires": "when an unfinished upload expires (RFC 9110 date); absent once its job started",
    "Chute-Job-Id": "the job the upload's last byte started",
    "Chute-Job-Url": "that job's URL",
}
#: Headers HEAD adds about the upload.
HEAD_HEADERS = {
    "Upload-Metadata": "filename and filetype ('key base64value' pairs)",
    "Cache-Control": "no-store",
}
#: Headers HEAD adds depending on the upload: its length or that it is deferred, and its concatenation.
HEAD_STATE_HEADERS = {
    "Upload-Length": "the file's size, once known",
    "Upload-Defer-Length": "1: the size is not known yet",
    "Upload-Concat": "partial, or final;<the partial uploads' URLs>",
}
#: One ``Upload-Metadata`` pair: a key of printable ASCII without space or comma, then optionally a
#: space and the value's padded base64 (tus-js-client writes an empty value as ``key `` too).
_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"
_METADATA_PAIR = rf"[\x21-\x2b\x2d-\x7e]+(?: (?:{_BASE64})?)?"
#: ``Upload-Metadata``: comma-separated pairs (keys unique; values base64 of UTF-8).
UPLOAD_METADATA = rf"^{_METADATA_PAIR}(?:,{_METADATA_PAIR})*$"
#: Longest Upload-Metadata (and Upload-Concat) value read: gunicorn refuses a header line over
#: 8190 bytes (431, limit_request_field_size) before chute sees it.
MAX_METADATA_HEADER = 8000
_UPLOAD_METADATA = re.compile(UPLOAD_METADATA)
#: An upload of this server in ``Upload-Concat``: its URL, or its path.
_UPLOAD_URL = r"(?:[hH][tT][tT][pP][sS]?://[^\s/]+)?/v1/tus/upl_[0-9a-f]{24}"
#: ``Upload-Concat``: ``partial``, or ``final;`` and the partial uploads' URLs, space-separated.
UPLOAD_CONCAT = rf"^(?:partial|final;{_UPLOAD_URL}(?: {_UPLOAD_URL}){{0,99}})$"
#: Checksum algorithms: sha1 because the spec requires it, sha256 because chute hashes with it.
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
#: ``Upload-Checksum``: an algorithm chute checks and the base64 digest of the request's body, as
#: long as that algorithm's digests are (20 and 32 bytes).
UPLOAD_CHECKSUM = r"^(?:sha1 [A-Za-z0-9+/]{27}=|sha256 [A-Za-z0-9+/]{43}=)$"
_UPLOAD_CHECKSUM = re.compile(UPLOAD_CHECKSUM)


def _digits(value: Any) -> Any:
    """A header's byte count: decimal digits only (``int()`` would also take ``+1``, ``1_0`` or `` 1``)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise PydanticCustomError("int_parsing", "a byte count is decimal digits")
    return value


def _metadata(value: str) -> str:
    if len(value) > MAX_METADATA_HEADER or not _UPLOAD_METADATA.fullmatch(value):
        raise PydanticCustomError("invalid_metadata", "Upload-Metadata must be 'key base64value' pairs")
    return value


def _checksum(value: str) -> str:
    if value.partition(" ")[0] not in CHECKSUM_ALGORITHMS:
        known = ", ".join(CHECKSUM_ALGORITHMS)
        raise PydanticCustomError("checksum_algorithm_unsupported", f"the checksum algorithm must be one of {known}")
    if not _UPLOAD_CHECKSUM.fullmatch(value):
        raise ValueError("Upload-Checksum must be '<algorithm> <base64>'")
    return value


#: ``Upload-Metadata``, refused as ``invalid_metadata`` (tus clients branch on it).
UploadMetadata = Annotated[
    str, AfterValidator(_metadata),
    Field(json_schema_extra={"pattern": UPLOAD_METADATA, "maxLength": MAX_METADATA_HEADER}),
]  # fmt: skip
#: ``Upload-Checksum``; an algorithm chute does not know is ``checksum_algorithm_unsupported`` (tus says 400).
UploadChecksum = Annotated[str, AfterValidator(_checksum), Field(json_schema_extra={"pattern": UPLOAD_CHECKSUM})]
#: A byte count in a header: 0 up to the largest size anyone may declare (the document states the
#: server's own ``max_upload_size`` where it bounds a file).
ByteCount = Annotated[int, Field(ge=0, le=MAX_SIZE), BeforeValidator(_digits)]


class TusHeaders(HeaderModel):
    """Headers every tus request but OPTIONS carries (checked before anything else: 412 otherwise)."""

    tus_resumable: Literal["1.0.0"] = Field(alias="Tus-Resumable", description="the protocol version (412 otherwise)")


class TusCreateHeaders(TusHeaders):
    """creation: Upload-Length, or Upload-Defer-Length: 1 (exactly one of them, except on a final upload,
    which has neither: its length is its parts')."""

    upload_length: ByteCount | None = Field(
        default=None, alias="Upload-Length",
        description="the file's size in bytes; not with Upload-Defer-Length, nor on a final upload",
    )  # fmt: skip
    upload_defer_length: Literal["1"] | None = Field(
        default=None, alias="Upload-Defer-Length", description="1: the size is sent later (in a PATCH)"
    )
    upload_metadata: UploadMetadata | None = Field(
        default=None, alias="Upload-Metadata",
        description="'key base64value' pairs, unique keys: filename (or name), filetype (or type), "
        "webhook_url, metadata (a JSON object); values are validated as createUpload's fields (422)",
    )  # fmt: skip
    upload_concat: str | None = Field(
        default=None, alias="Upload-Concat", max_length=MAX_METADATA_HEADER, pattern=UPLOAD_CONCAT,
        description="partial, or final;<urls of finished partial uploads of this caller>",
    )  # fmt: skip
    upload_checksum: UploadChecksum | None = Field(
        default=None, alias="Upload-Checksum",
        description="with a body: its digest (sha1 or sha256, base64); a mismatch is 460 and nothing is kept",
    )  # fmt: skip


class TusPatchHeaders(TusHeaders):
    """A PATCH: where its body goes, optionally its checksum, and a deferred length once known."""

    upload_offset: ByteCount = Field(alias="Upload-Offset", description="where the body goes: the bytes stored so far")
    upload_checksum: UploadChecksum | None = Field(
        default=None, alias="Upload-Checksum",
        description="the body's digest (sha1 or sha256, base64); a mismatch is 460 and nothing is kept",
    )  # fmt: skip
    upload_length: ByteCount | None = Field(
        default=None, alias="Upload-Length", description="a deferred length, once known (once only)"
    )


def document_limits(document: dict[str, Any], settings: Settings) -> None:
    """Write this server's largest file into the tus operations' ``Upload-Length`` parameters."""
    for path in document["paths"].values():
        for operation in path.values():
            if "tus" not in operation.get("tags", ()):
                continue
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "Upload-Length" and parameter["in"] == "header":
                    parameter["schema"]["maximum"] = settings.max_upload_size
