"""The tus 1.0.0 protocol's rules, checked up front in one place (as tusd's handler does).

Headers are parsed and validated here; the views in web/tus.py then speak only in parsed
values, and the store (web/tus_store.py) never sees a header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from flask import Request

from models.errors import BadRequest, ChuteError
from web.contract import loads
from web.schemas.tus import CHECKSUM_ALGORITHMS, MAX_METADATA_HEADER

#: The protocol version spoken, and the ones accepted.
TUS_VERSION = "1.0.0"
#: Extensions announced by OPTIONS (concatenation of unfinished partials is not one of them).
EXTENSIONS = ("creation", "creation-with-upload", "creation-defer-length", "expiration", "checksum",
              "termination", "concatenation")  # fmt: skip
#: The only body type of PATCH (and of a creation-with-upload POST).
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
#: Headers a browser may send and must be able to read (CORS).
REQUEST_HEADERS = ("Tus-Resumable", "Upload-Length", "Upload-Defer-Length", "Upload-Metadata", "Upload-Offset",
                   "Upload-Concat", "Upload-Checksum")  # fmt: skip
#: chute's own answer headers: the job a finished upload started.
JOB_ID_HEADER, JOB_URL_HEADER = "Chute-Job-Id", "Chute-Job-Url"
RESPONSE_HEADERS = ("Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm",
                    "Upload-Offset", "Upload-Length", "Upload-Defer-Length", "Upload-Metadata", "Upload-Expires",
                    "Upload-Concat", "Location", JOB_ID_HEADER, JOB_URL_HEADER)  # fmt: skip


class TusError(ChuteError):
    """An error whose status tus fixes (412, 460, 410 …) rather than chute's mapping by class."""

    def __init__(self, status: int, message: str, *, code: str, details: dict[str, Any] | None = None):
        super().__init__(message, code=code, details=details)
        self.status = status


def check_version(request: Request) -> None:
    """Every request but OPTIONS names the version it speaks.

    Raises:
        TusError: 412 without ``Tus-Resumable: 1.0.0`` (the answer carries ``Tus-Version``).
    """
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise TusError(412, f"send Tus-Resumable: {TUS_VERSION}", code="tus_version_unsupported")


def check_body_type(request: Request) -> None:
    """Raises TusError 415 unless the body is ``application/offset+octet-stream``."""
    if request.mimetype != OFFSET_OCTET_STREAM:
        raise TusError(415, f"send Content-Type: {OFFSET_OCTET_STREAM}", code="unsupported_media_type")


def has_body(request: Request) -> bool:
    """True when a creation POST carries bytes (creation-with-upload)."""
    if request.mimetype != OFFSET_OCTET_STREAM:
        return False
    return bool(request.content_length) or request.headers.get("Transfer-Encoding", "").lower() == "chunked"


def upload_length(length: int | None, deferred: str | None) -> int | None:
    """The file's length from ``Upload-Length`` (parsed by the header model), or None with
    ``Upload-Defer-Length: 1``.

    Raises:
        BadRequest: neither or both (no parameter schema can say "exactly one of").
    """
    if (length is None) == (deferred is None):
        raise BadRequest("send either Upload-Length or Upload-Defer-Length: 1", code="invalid_header",
                         details={"header": "Upload-Length"})  # fmt: skip
    return length


def parse_metadata(raw: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (a value may be absent).

    Only the values of :data:`READ_KEYS` are decoded as text; the client's other keys are not read,
    so their values may be any bytes (tus asks only for base64).

    Raises:
        BadRequest: a key twice, a value that is not base64, or one chute reads that is not UTF-8.
    """
    if not raw:
        return {}
    if len(raw) > MAX_METADATA_HEADER:
        raise BadRequest("Upload-Metadata is too long", code="invalid_metadata")
    out: dict[str, str] = {}
    seen: set[str] = set()
    for pair in raw.split(","):
        key, _, value = pair.strip().partition(" ")
        if not key or key in seen or " " in value.strip():
            raise BadRequest("Upload-Metadata must be 'key base64value' pairs with unique keys",
                             code="invalid_metadata")  # fmt: skip
        seen.add(key)
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
            if key in READ_KEYS:
                out[key] = decoded.decode()
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata {key!r} is not base64 of UTF-8", code="invalid_metadata") from None
    return out


def encode_metadata(values: dict[str, str | None]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items() if v is not None)


#: The metadata keys chute reads (Uppy sends both name and filename, and both filetype and type).
READ_KEYS = frozenset({"filename", "name", "filetype", "type", "webhook_url", "metadata"})


@dataclass(frozen=True)
class Declared:
    """What ``Upload-Metadata`` says about the file, in chute's terms."""

    filename: str | None
    content_type: str | None
    webhook_url: str | None
    metadata: dict[str, Any] | None


def declared(values: dict[str, str]) -> Declared:
    """chute's fields from the metadata keys clients send (Uppy sends both name and filename).

    Raises:
        BadRequest: ``metadata`` that is not a JSON object.
    """
    meta = values.get("metadata")
    parsed: dict[str, Any] | None = None
    if meta:
        try:
            parsed = loads(meta)  # the JSON a body may be: no NaN or Infinity, which no column holds
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise BadRequest("the metadata key must hold a JSON object", code="invalid_metadata")
    return Declared(
        filename=values.get("filename") or values.get("name") or None,
        content_type=values.get("filetype") or values.get("type") or None,
        webhook_url=values.get("webhook_url") or None,
        metadata=parsed,
    )


@dataclass(frozen=True)
class Concat:
    """``Upload-Concat``: ``partial``, or ``final`` with the partial uploads' ids in order."""

    kind: str
    parts: tuple[str, ...] = ()


def parse_concat(raw: str | None, prefix: str) -> Concat | None:
    """``partial`` or ``final;<url> <url> …`` (URLs absolute or paths under ``prefix``).

    Raises:
        BadRequest: anything else.
    """
    if raw is None:
        return None
    raw = raw.strip()
    if raw == "partial":
        return Concat("partial")
    kind, _, rest = raw.partition(";")
    if kind.strip() != "final" or not rest.strip():
        raise BadRequest("Upload-Concat must be 'partial' or 'final;<urls>'", code="invalid_header",
                         details={"header": "Upload-Concat"})  # fmt: skip
    ids = []
    for url in rest.split():
        path = url.split("://", 1)[-1]
        path = path[path.find("/") :] if "://" in url else path
        if not path.startswith(prefix + "/") or "/" in path[len(prefix) + 1 :].strip("/"):
            raise BadRequest(f"{url} is not a tus upload of this server", code="invalid_header",
                             details={"header": "Upload-Concat"})  # fmt: skip
        ids.append(path[len(prefix) + 1 :].strip("/"))
    return Concat("final", tuple(ids))


@dataclass(frozen=True)
class Checksum:
    """``Upload-Checksum: <algorithm> <base64 digest>`` of one request's body."""

    algorithm: str
    digest: bytes

    def hasher(self) -> Any:
        return hashlib.new(self.algorithm)


def parse_checksum(raw: str | None) -> Checksum | None:
    """Raises BadRequest for an unknown algorithm or a digest that is not base64."""
    if raw is None:
        return None
    algorithm, _, value = raw.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadRequest(f"checksum algorithm {algorithm!r} is not one of {', '.join(CHECKSUM_ALGORITHMS)}",
                         code="checksum_algorithm_unsupported")  # fmt: skip
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum must be '<algorithm> <base64>'", code="invalid_header",
                         details={"header": "Upload-Checksum"}) from None  # fmt: skip
    return Checksum(algorithm, digest)


def http_date(value: datetime) -> str:
    """RFC 9110's date format, as ``Upload-Expires`` wants it."""
    return format_datetime(value.astimezone(UTC), usegmt=True)
