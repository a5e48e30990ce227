"""tus requests: they speak in headers, declared here for validation's sake and the document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Descriptions of the headers tus answers carry.
UPLOAD_HEADERS = {
    "Tus-Resumable": "1.0.0",
    "Upload-Offset": "bytes stored so far",
    "Upload-Expires": "when an unfinished upload expires (RFC 9110 date)",
    "Chute-Job-Id": "the job the upload's last byte started",
    "Chute-Job-Url": "that job's URL",
}


class TusHeaders(BaseModel):
    """Headers every tus request but OPTIONS carries (checked by the protocol layer: 412 otherwise)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    tus_resumable: Literal["1.0.0"] = Field(alias="Tus-Resumable", description="the protocol version (412 otherwise)")


class TusCreateHeaders(TusHeaders):
    upload_length: str | None = Field(default=None, alias="Upload-Length", description="the file's size in bytes")
    upload_defer_length: str | None = Field(default=None, alias="Upload-Defer-Length", description="1: size sent later")
    upload_metadata: str | None = Field(
        default=None, alias="Upload-Metadata",
        description="'key base64value' pairs: filename, filetype, webhook_url, metadata (a JSON object)",
    )
    upload_concat: str | None = Field(default=None, alias="Upload-Concat", description="partial, or final;<urls>")


class TusPatchHeaders(TusHeaders):
    upload_offset: str = Field(alias="Upload-Offset", description="where the body goes: the bytes stored so far")
    upload_checksum: str | None = Field(default=None, alias="Upload-Checksum", description="sha1|sha256 <base64>")
    upload_length: str | None = Field(default=None, alias="Upload-Length", description="a deferred length, once known")
