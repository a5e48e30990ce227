"""Uploads and their chunk manifests, and the rules of ``receiving → complete | expired | cancelled``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    false,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import tenant as _tenant  # noqa: F401  (the table our foreign keys name)
from models.db import Base, of_tenant, utcnow
from models.errors import Conflict, Gone, Invalid, NotFound, TooLarge
from models.fastread import FastRead
from models.ids import new_id
from models.settings import Settings
from models.staging import EXTRACTED_KINDS

#: Upload states.
RECEIVING, COMPLETE, EXPIRED, CANCELLED = "receiving", "complete", "expired", "cancelled"
#: An open upload, as SQL: the condition of the partial index ``ix_uploads_open`` and of the
#: count that reads it (``models.quota.OPEN_UPLOADS``), the same text so that its plans can use it.
OPEN_SQL = f"status = '{RECEIVING}'"

#: More chunks than this is a client bug, not a file.
MAX_CHUNKS = 100_000

#: What an upload may ask of OCR (see ``actors.extraction.ocr``): ``auto`` reads pages and
#: images without text that look like documents, ``always`` every one, ``never`` none.
OCR_MODES = ("auto", "always", "never")


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    #: The whole file's sha256 as the client declared it (hex), checked by assemble.
    sha256: Mapped[str | None] = mapped_column(String(64))
    chunk_size: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=RECEIVING, index=True)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    job_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    #: One of :data:`OCR_MODES`, read by the extract stage.
    ocr: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    #: tus uploads only: the bytes received so far, in order (None: a chunk-API upload).
    offset: Mapped[int | None] = mapped_column(BigInteger)
    #: tus creation-defer-length: ``size`` is not known yet (it is 0 until declared).
    length_deferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: tus concatenation: "partial" (never a job of its own) or "final" (made of partials).
    concat: Mapped[str | None] = mapped_column(String(8))
    #: A final upload's partial uploads, in order.
    concat_parts: Mapped[list[Any] | None]
    #: The upload token that created it (None: an API key), so the token sees only its own.
    credential_id: Mapped[str | None] = mapped_column(String(40), index=True)
    #: Types the file's bytes may be (the token's scope), checked once the type is detected.
    allowed_types: Mapped[list[Any] | None]

    #: Every upload's creation counts the tenant's open uploads and their bytes (``models.quota``):
    #: with only the tenant's and the status's indexes, that read every open upload of every
    #: tenant. This one holds the open uploads only, so it reads the tenant's own.
    __table_args__ = (
        Index("ix_uploads_open", "tenant_id", postgresql_where=text(OPEN_SQL), sqlite_where=text(OPEN_SQL)),
    )

    @property
    def is_tus(self) -> bool:
        return self.offset is not None

    def expected_chunk_size(self, index: int) -> int:
        return _expected_chunk_size(self.size, self.chunk_size, self.chunk_count, index)


def _expected_chunk_size(size: int, chunk_size: int, chunk_count: int, index: int) -> int:
    """Every chunk is ``chunk_size`` bytes except the last, which holds the rest."""
    return chunk_size if index < chunk_count - 1 else size - chunk_size * (chunk_count - 1)


class Chunk(Base):
    __tablename__ = "upload_chunks"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


def _check_size(settings: Settings, size: int) -> None:
    if size > settings.max_upload_size:
        raise TooLarge(
            f"size {size} is over the limit of {settings.max_upload_size} bytes",
            code="file_too_large",
            details={"max_upload_size": settings.max_upload_size},
        )


def _insert(
    session: Session, tenant_id: str, settings: Settings, *, chunk_size: int, chunk_count: int, **fields: Any
) -> Upload:
    now = utcnow()
    upload = Upload(
        id=new_id("upl"),
        tenant_id=tenant_id,
        chunk_size=chunk_size,
        chunk_count=chunk_count,
        status=RECEIVING,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.upload_ttl_seconds),
        **fields,
    )
    session.add(upload)
    session.flush()
    return upload


def create_upload(
    session: Session,
    tenant_id: str,
    settings: Settings,
    *,
    filename: str,
    size: int,
    content_type: str | None = None,
    sha256: str | None = None,
    chunk_size: int | None = None,
    webhook_url: str | None = None,
    metadata: dict[str, Any] | None = None,
    ocr: str = "auto",
    credential_id: str | None = None,
    allowed_types: list[Any] | None = None,
) -> Upload:
    """Open an upload and fix its chunk layout.

    Raises:
        TooLarge: ``size`` over ``max_upload_size``.
        Invalid: a chunk size out of bounds, or too many chunks, or an unknown OCR mode.
    """
    _check_size(settings, size)
    _check_ocr(ocr)
    chunk_size = chunk_size or settings.default_chunk_size
    if not settings.min_chunk_size <= chunk_size <= settings.max_chunk_size:
        raise Invalid(
            f"chunk_size must be between {settings.min_chunk_size} and {settings.max_chunk_size}",
            code="invalid_chunk_size",
            details={"min": settings.min_chunk_size, "max": settings.max_chunk_size},
        )
    chunk_count = math.ceil(size / chunk_size)
    if chunk_count > MAX_CHUNKS:
        raise Invalid(f"{chunk_count} chunks is over the limit of {MAX_CHUNKS}", code="too_many_chunks")
    fields = {"filename": filename, "size": size, "content_type": content_type, "sha256": sha256, "ocr": ocr}
    return _insert(session, tenant_id, settings, chunk_size=chunk_size, chunk_count=chunk_count,
                   webhook_url=webhook_url, meta=metadata, credential_id=credential_id,
                   allowed_types=allowed_types, **fields)  # fmt: skip


def _check_ocr(ocr: str) -> None:
    if ocr not in OCR_MODES:
        raise Invalid(f"ocr must be one of {', '.join(OCR_MODES)}", code="invalid_field", details={"field": "ocr"})


def get_upload(session: Session, tenant_id: str, upload_id: str, *, for_update: bool = False) -> Upload:
    """The tenant's upload; another tenant's id is as unknown as a made-up one.

    Raises:
        NotFound: no such upload for this tenant.
    """
    query = select(Upload).where(Upload.id == upload_id)  # the tenant is checked on the row: of_tenant
    if for_update:
        query = query.with_for_update()
    upload = of_tenant(session.scalar(query), tenant_id)
    if upload is None:
        raise NotFound(f"no upload {upload_id}", code="upload_not_found")
    return upload


@dataclass(frozen=True, slots=True)
class ChunkTarget:
    """The columns of an upload that a chunk PUT checks, read without the ORM (:func:`chunk_target`)."""

    id: str
    status: str
    expires_at: datetime
    size: int
    chunk_size: int
    chunk_count: int
    offset: int | None
    tenant_id: str

    @property
    def is_tus(self) -> bool:
        return self.offset is not None

    def expected_chunk_size(self, index: int) -> int:
        return _expected_chunk_size(self.size, self.chunk_size, self.chunk_count, index)


def chunk_target(tenant_id: str, upload_id: str) -> ChunkTarget:
    """The tenant's upload as a chunk PUT checks it before reading the body: one select in
    autocommit mode (``FastRead``), as the status read; the two ORM loads of the upload were a
    quarter of a PUT's CPU samples.

    Raises:
        NotFound: no such upload for this tenant.
    """
    return _target(_CHUNK_TARGET_READ.one_or_none(upload_id=upload_id), tenant_id, upload_id)


def lock_chunk_target(session: Session, tenant_id: str, upload_id: str) -> ChunkTarget:
    """:func:`chunk_target` with the upload's row locked until ``session`` ends (a chunk stored
    under the lock cannot land after ``complete`` took the manifest).

    Raises:
        NotFound: no such upload for this tenant.
    """
    return _target(_CHUNK_TARGET_LOCK.within(session, upload_id=upload_id), tenant_id, upload_id)


def _target(row: Any, tenant_id: str, upload_id: str) -> ChunkTarget:
    if of_tenant(row, tenant_id) is None:
        raise NotFound(f"no upload {upload_id}", code="upload_not_found")
    return ChunkTarget(*row)


def ensure_receiving(upload: Upload | ChunkTarget, now: datetime | None = None) -> None:
    """Raises Gone for an expired upload, Conflict for another that takes no more chunks."""
    if upload.status == EXPIRED or (upload.status == RECEIVING and (now or utcnow()) >= upload.expires_at):
        expires_at = upload.expires_at.isoformat()
        raise Gone("the upload has expired; start a new one", code="upload_expired", details={"expires_at": expires_at})
    if upload.status != RECEIVING:
        raise Conflict(f"the upload is {upload.status}", code=f"upload_{upload.status}")


def ensure_chunked(upload: Upload | ChunkTarget) -> None:
    """Raises Conflict for a tus upload: its bytes go through /v1/tus, and its last byte completes it."""
    if upload.is_tus:
        raise Conflict("this is a tus upload: send its bytes with PATCH /v1/tus/{upload_id}", code="upload_is_tus")


def check_chunk_index(upload: Upload | ChunkTarget, index: int) -> int:
    """The size chunk ``index`` must have.

    Raises:
        NotFound: an index outside the upload's layout.
    """
    if not 0 <= index < upload.chunk_count:
        raise NotFound(
            f"chunk index {index} is outside 0..{upload.chunk_count - 1}",
            code="chunk_not_found",
            details={"chunk_count": upload.chunk_count},
        )
    return upload.expected_chunk_size(index)


def record_chunk(session: Session, upload: Upload | ChunkTarget, index: int, size: int, sha256: str) -> None:
    """Insert or replace the manifest row of one chunk (a re-sent chunk replaces the old)."""
    values = {"upload_id": upload.id, "index": index, "size": size, "sha256": sha256, "received_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        _RECORD_CHUNK.within(session, **values)
    else:
        session.execute(_SQLITE_RECORD_CHUNK, values)


def _chunk_upsert(insert: Any) -> Any:
    """The manifest row's insert-or-replace, in ``insert``'s dialect (parameters: its columns)."""
    names = ("upload_id", "index", "size", "sha256", "received_at")
    stmt = insert(CHUNKS_TABLE).values({name: bindparam(name, type_=CHUNKS_TABLE.c[name].type) for name in names})
    return stmt.on_conflict_do_update(
        index_elements=[CHUNKS_TABLE.c.upload_id, CHUNKS_TABLE.c.index],
        set_={"size": stmt.excluded.size, "sha256": stmt.excluded.sha256, "received_at": stmt.excluded.received_at},
    )


UPLOADS_TABLE, CHUNKS_TABLE = Base.metadata.tables["uploads"], Base.metadata.tables["upload_chunks"]
_UPLOADS, _CHUNKS = UPLOADS_TABLE.c, CHUNKS_TABLE.c
#: The stages' reads, as table-column selects built once (no ORM entities to compile or load).
_OCR_MODE = select(_UPLOADS.ocr).where(_UPLOADS.id == bindparam("upload_id"))
_MANIFEST = (
    select(_CHUNKS.index, _CHUNKS.size, _CHUNKS.sha256)
    .where(_CHUNKS.upload_id == bindparam("upload_id"))
    .order_by(_CHUNKS.index)
)
#: The upload's columns a stage checks and its chunks, in order, in one select (parameter:
#: upload_id). An outer join: an upload without chunks is one row whose chunk columns are NULL.
_WITH_MANIFEST = (
    select(_UPLOADS.chunk_count, _UPLOADS.sha256, _UPLOADS.allowed_types, _UPLOADS.ocr, _CHUNKS.index, _CHUNKS.size,
           _CHUNKS.sha256.label("chunk_sha256"))
    .select_from(UPLOADS_TABLE.outerjoin(CHUNKS_TABLE, _CHUNKS.upload_id == _UPLOADS.id))
    .where(_UPLOADS.id == bindparam("upload_id"))
    .order_by(_CHUNKS.index)
)  # fmt: skip
#: The two reads a stage run starts from, on the session's driver connection (``FastRead.all_within``).
_MANIFEST_READ, _WITH_MANIFEST_READ = FastRead(_MANIFEST), FastRead(_WITH_MANIFEST)
#: What extract reads for a kind it does not parse (a text file): the OCR mode alone.
_OCR_MODE_READ = FastRead(_OCR_MODE)
#: A chunk PUT's reads of its upload (parameter: upload_id; the tenant is checked on the row, as
#: ``models.db.of_tenant`` says why), and its manifest row's write.
_CHUNK_TARGET = select(_UPLOADS.id, _UPLOADS.status, _UPLOADS.expires_at, _UPLOADS.size, _UPLOADS.chunk_size,
                       _UPLOADS.chunk_count, _UPLOADS.offset, _UPLOADS.tenant_id).where(
    _UPLOADS.id == bindparam("upload_id")
)  # fmt: skip
_CHUNK_TARGET_READ, _CHUNK_TARGET_LOCK = FastRead(_CHUNK_TARGET), FastRead(_CHUNK_TARGET.with_for_update())
_RECORD_CHUNK = FastRead(_chunk_upsert(pg_insert).returning(_CHUNKS.index))
_SQLITE_RECORD_CHUNK = _chunk_upsert(sqlite_insert)


@dataclass(frozen=True, slots=True)
class ChunkEntry:
    """One received chunk as its manifest records it."""

    index: int
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class StagedUpload:
    """What assemble checks a completed upload's staged chunks against."""

    id: str
    chunk_count: int
    sha256: str | None
    allowed_types: list[Any] | None
    chunks: list[ChunkEntry]


def chunk_manifest(session: Session, upload_id: str) -> list[ChunkEntry]:
    """The upload's received chunks, in order."""
    return [ChunkEntry(*row) for row in _MANIFEST_READ.all_within(session, upload_id=upload_id)]


def ocr_mode(session: Session, upload_id: str) -> str:
    """The OCR mode the upload asked for."""
    row = _OCR_MODE_READ.within(session, upload_id=upload_id)
    return (row.ocr if row is not None else None) or "auto"


def staged_upload(session: Session, upload_id: str) -> StagedUpload | None:
    """The upload's declared checksum, allowed types and chunk manifest (None: no such upload):
    one select, as assemble reads it at the start of every run."""
    rows = _WITH_MANIFEST_READ.all_within(session, upload_id=upload_id)
    if not rows:
        return None
    first = rows[0]
    return StagedUpload(upload_id, first.chunk_count, first.sha256, first.allowed_types, _manifest_of(rows))


def ocr_mode_and_manifest(session: Session, upload_id: str) -> tuple[str, list[ChunkEntry]]:
    """``ocr_mode`` and ``chunk_manifest`` in one select, as extract reads them at the start of
    every run (("auto", []) for no such upload)."""
    rows = _WITH_MANIFEST_READ.all_within(session, upload_id=upload_id)
    return (rows[0].ocr or "auto") if rows else "auto", _manifest_of(rows)


def _manifest_of(rows: Sequence[Any]) -> list[ChunkEntry]:
    """The chunks of ``_WITH_MANIFEST``'s rows (one row of no chunk for an upload without any)."""
    return [ChunkEntry(row.index, row.size, row.chunk_sha256) for row in rows if row.index is not None]


def missing_indexes(chunk_count: int, received: Iterable[int]) -> list[int]:
    """The chunk indexes of ``range(chunk_count)`` not among ``received``."""
    have = set(received)
    return [i for i in range(chunk_count) if i not in have]


def expire_uploads(session: Session, now: datetime | None = None) -> list[str]:
    """Mark receiving uploads past their expiry as expired; returns their ids."""
    now = now or utcnow()
    ids = list(session.scalars(select(Upload.id).where(Upload.status == RECEIVING, Upload.expires_at <= now)))
    if ids:
        session.execute(update(Upload).where(Upload.id.in_(ids), Upload.status == RECEIVING).values(status=EXPIRED))
    return ids


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A file received whole in one request, recorded as a complete upload: what its job copies."""

    id: str
    tenant_id: str
    filename: str
    content_type: str | None
    size: int
    sha256: str
    webhook_url: str | None
    meta: dict[str, Any] | None
    credential_id: str | None = None


@dataclass(frozen=True, slots=True)
class FileArrival:
    """What a request says of a file it sent whole, and the job and upload ids chosen for it
    (the upload's before its row: the file is staged under it before the transaction)."""

    job_id: str
    filename: str
    size: int
    sha256: str
    content_type: str | None
    webhook_url: str | None
    metadata: dict[str, Any] | None
    ocr: str = "auto"
    upload_id: str = field(default_factory=lambda: new_id("upl"))


def record_received_file(session: Session, tenant_id: str, settings: Settings, arrival: FileArrival) -> ReceivedFile:
    """Record a file received whole (``POST /v1/jobs``) as an upload already complete, whose one
    chunk holds the file and whose job is ``arrival.job_id`` (the caller inserts it in this
    transaction).

    Table inserts, not ORM objects: a batch request makes one per file, and the unit of work cost
    more than the statements.

    Raises:
        TooLarge: the size over ``max_upload_size``.
        Invalid: an unknown OCR mode.
    """
    received, upload_row, chunk_row = received_file_rows(tenant_id, settings, arrival)
    session.execute(_ADD_UPLOAD, upload_row)
    if chunk_row is not None:
        session.execute(_ADD_CHUNK, chunk_row)
    return received


def received_file_rows(
    tenant_id: str, settings: Settings, arrival: FileArrival
) -> tuple[ReceivedFile, dict[str, Any], dict[str, Any] | None]:
    """What ``record_received_file`` inserts: the file, its upload's row and its one chunk's row
    (None for an empty file), checked as it checks them.

    Raises:
        TooLarge: the size over ``max_upload_size``.
        Invalid: an unknown OCR mode.
    """
    a = arrival
    _check_size(settings, a.size)
    _check_ocr(a.ocr)
    now = utcnow()
    received = ReceivedFile(a.upload_id, tenant_id, a.filename, a.content_type, a.size, a.sha256, a.webhook_url,
                            a.metadata)  # fmt: skip
    upload_row = {"id": received.id, "tenant_id": tenant_id, "filename": a.filename, "content_type": a.content_type,
                  "size": a.size, "sha256": a.sha256, "chunk_size": max(a.size, 1), "chunk_count": 1 if a.size else 0,
                  "status": COMPLETE, "webhook_url": a.webhook_url, "metadata": a.metadata, "created_at": now,
                  "completed_at": now, "expires_at": now + timedelta(seconds=settings.upload_ttl_seconds),
                  "job_id": a.job_id, "ocr": a.ocr}  # fmt: skip
    chunk_row = {"upload_id": received.id, "index": 0, "size": a.size, "sha256": a.sha256, "received_at": now}
    return received, upload_row, chunk_row if a.size else None


_ADD_UPLOAD = insert(UPLOADS_TABLE)
_ADD_CHUNK = insert(CHUNKS_TABLE)


def unneeded_uploads(session: Session, upload_ids: list[str]) -> tuple[list[str], list[str]]:
    """Of ``upload_ids`` (found on the staging disk), those whose chunks nobody will read again
    (expired or cancelled, or complete with a job that is over, extracted, or stored and of a
    kind extract does not read), and those the database does not know (a POST /v1/jobs writes
    its chunk just before its row commits, so the caller waits before removing these)."""
    from models.job import TERMINAL, Job  # job.py imports this module

    if not upload_ids:
        return [], []
    rows = session.execute(
        select(Upload.id, Upload.status, Job.status, Job.uploaded_at, Job.extracted_at, Job.kind)
        .outerjoin(Job, Job.id == Upload.job_id)
        .where(Upload.id.in_(upload_ids))
    ).all()
    known = {row[0] for row in rows}
    unneeded = [upload_id for upload_id, status, job_status, uploaded_at, extracted_at, kind in rows
                if status in (EXPIRED, CANCELLED) or job_status in TERMINAL or extracted_at is not None
                or (uploaded_at is not None and kind not in EXTRACTED_KINDS)]  # fmt: skip
    return unneeded, [u for u in upload_ids if u not in known]
