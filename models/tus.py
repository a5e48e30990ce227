"""tus uploads in chute's upload model: the rows behind web/tus_store.py.

A tus upload is an ordinary upload whose bytes arrive in order rather than in a fixed chunk
layout: every PATCH that stores bytes becomes the next chunk (its own size and sha256 in the
manifest, its own file in staging), and ``offset`` is the sum of them. assemble then reads
and verifies a tus upload exactly as a chunked one, and the sweeper expires both alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import upload as uploads
from models.errors import BadRequest, Conflict
from models.settings import Settings

#: ``concat`` values.
PARTIAL, FINAL = "partial", "final"


def create(
    session: Session,
    tenant_id: str,
    settings: Settings,
    *,
    filename: str,
    size: int | None,
    content_type: str | None,
    concat: str | None = None,
    concat_parts: list[str] | None = None,
    webhook_url: str | None = None,
    metadata: dict[str, Any] | None = None,
    credential_id: str | None = None,
    allowed_types: list[Any] | None = None,
) -> uploads.Upload:
    """Open a tus upload of ``size`` bytes (None: declared later, with a PATCH).

    Raises:
        TooLarge: ``size`` over ``max_upload_size``.
    """
    if size is not None:
        uploads._check_size(settings, size)
    return uploads._insert(session, tenant_id, settings, chunk_size=0, chunk_count=0, filename=filename,
                           size=size or 0, content_type=content_type, sha256=None, offset=0,
                           length_deferred=size is None, concat=concat, concat_parts=concat_parts,
                           webhook_url=webhook_url, meta=metadata, credential_id=credential_id,
                           allowed_types=allowed_types)  # fmt: skip


def finished(upload: uploads.Upload) -> bool:
    """Every byte is there."""
    return not upload.length_deferred and upload.offset == upload.size


def check_offset(upload: uploads.Upload, offset: int) -> None:
    """Raises Conflict (409) unless ``offset`` is where the upload's bytes end."""
    if upload.offset != offset:
        raise Conflict(
            f"Upload-Offset is {offset} but the upload has {upload.offset} bytes",
            code="offset_mismatch",
            details={"offset": upload.offset},
        )


def declare_length(upload: uploads.Upload, settings: Settings, length: int) -> None:
    """Fix a deferred length (tus: ``Upload-Length`` on a PATCH).

    Raises:
        TooLarge: over ``max_upload_size``.
        BadRequest: less than what was already received.
    """
    uploads._check_size(settings, length)
    if length < (upload.offset or 0):
        raise BadRequest("Upload-Length is less than the bytes already received", code="invalid_header",
                         details={"header": "Upload-Length"})  # fmt: skip
    upload.size = length
    upload.length_deferred = False


def append(session: Session, upload: uploads.Upload, offset: int, size: int, sha256: str) -> int:
    """Record ``size`` bytes stored at ``offset`` as the upload's next chunk (the caller holds
    its row lock, and has moved the bytes to ``chunk_path(…, index)``); returns that index.

    Raises:
        Conflict: ``offset`` is no longer where the upload ends (a concurrent PATCH won).
        BadRequest: too many chunks.
    """
    check_offset(upload, offset)
    index = upload.chunk_count
    if index >= uploads.MAX_CHUNKS:
        raise BadRequest(f"more than {uploads.MAX_CHUNKS} PATCH requests for one upload", code="too_many_chunks")
    uploads.record_chunk(session, upload, index, size, sha256)
    upload.chunk_count = index + 1
    upload.chunk_size = max(upload.chunk_size, size)
    upload.offset = offset + size
    return index


def check_partials(final_ids: tuple[str, ...], partials: list[uploads.Upload]) -> int:
    """The final upload's size, once every partial it names is a finished partial upload.

    Raises:
        BadRequest: a partial that is unknown, not partial, unfinished, or over.
    """
    by_id = {p.id: p for p in partials}
    total = 0
    for upload_id in final_ids:
        part = by_id.get(upload_id)
        if part is None or part.concat != PARTIAL:
            raise BadRequest(f"{upload_id} is not a partial upload", code="invalid_concat",
                             details={"upload_id": upload_id})  # fmt: skip
        if part.status != uploads.RECEIVING or not finished(part):
            raise BadRequest(f"the partial upload {upload_id} is not finished", code="partial_unfinished",
                             details={"upload_id": upload_id, "offset": part.offset})  # fmt: skip
        total += part.size
    return total


def adopt_chunks(session: Session, final: uploads.Upload, parts: list[tuple[uploads.Upload, list[uploads.ChunkEntry]]]
                 ) -> list[tuple[str, int, int]]:  # fmt: skip
    """Give ``final`` the partials' chunks in order; returns (partial id, its index, final index)
    for each, so the caller links the files."""
    moves = []
    index = 0
    for part, chunks in parts:
        for chunk in chunks:
            uploads.record_chunk(session, final, index, chunk.size, chunk.sha256)
            moves.append((part.id, chunk.index, index))
            index += 1
    final.chunk_count = index
    final.chunk_size = max((c.size for _, chunks in parts for c in chunks), default=0)
    final.offset = final.size
    return moves
