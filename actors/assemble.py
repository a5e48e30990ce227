"""assemble: verify every staged chunk against its manifest and the whole file's sha256.

The chunks are not copied into one file: upload streams them part by part, so the bytes
are read twice in all (here, and by upload) and written once (by the store).
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy.orm import Session

from actors.chunkio import READ_SIZE, staged_file
from actors.extraction import detect
from actors.progress import ProgressThrottle
from actors.stage import stage_actor
from actors.storage import open_store
from actors.tracking import StageStart
from actors.upload import object_key
from models import job as jobs
from models import upload as uploads
from models.db import session_scope
from models.errors import FileRejected
from models.settings import current_settings
from models.tokens import type_allowed

log = logging.getLogger(__name__)


def read_upload(session: Session, job: jobs.JobSnapshot) -> uploads.StagedUpload:
    """The job's upload and its chunks, in order (read where the stage's run is recorded)."""
    upload = uploads.staged_upload(session, job.upload_id)
    assert upload is not None  # the job's foreign key
    return upload


@stage_actor("assemble", prepare=read_upload)
def assemble(job_id: str, start: StageStart) -> None:
    """Check the chunks and the file's checksum; record size, sha256, detected type, and the key
    the file is to be stored under."""
    if start.job.assembled_at is not None or start.prepared is None:
        return
    upload: uploads.StagedUpload = start.prepared
    chunks = upload.chunks
    missing = uploads.missing_indexes(upload.chunk_count, (c.index for c in chunks))
    declared_sha256 = upload.sha256
    if missing:
        raise FileRejected(f"{len(missing)} chunks are missing", code="incomplete_upload")

    whole = hashlib.sha256()
    done = 0
    progress = ProgressThrottle()
    file = staged_file(upload.id, chunks)
    for chunk, part in zip(chunks, file.chunks, strict=True):
        digest = hashlib.sha256()
        size = 0
        try:
            with open(part.path, "rb") as f:
                while block := f.read(READ_SIZE):
                    digest.update(block)
                    whole.update(block)
                    size += len(block)
        except FileNotFoundError:
            raise FileRejected(f"chunk {chunk.index} is no longer staged", code="incomplete_upload") from None
        if size != chunk.size or digest.hexdigest() != chunk.sha256:
            raise FileRejected(
                f"chunk {chunk.index} does not match its checksum",
                code="checksum_mismatch",
                details={"index": chunk.index},
            )
        done += size
        if progress.due(done / max(file.size, 1)):
            with session_scope() as session:
                jobs.report_progress(session, job_id, "assemble", done / max(file.size, 1))

    sha256 = whole.hexdigest()
    if declared_sha256 and declared_sha256.lower() != sha256:
        raise FileRejected(
            "the file's sha256 is not the one declared",
            code="checksum_mismatch",
            details={"declared": declared_sha256, "actual": sha256},
        )
    detected = detect(file.head())
    if not type_allowed(detected.mime, upload.allowed_types):
        raise FileRejected(
            f"the file is {detected.mime}, which its upload token does not allow",
            code="type_not_allowed",
            details={"detected_type": detected.mime, "allowed_types": upload.allowed_types},
        )
    # Where upload will store the file is recorded now, durably with the rest, before any byte
    # goes there: a cancel from here on knows what to remove, and upload's start need not wait
    # for a commit of its own to reach the disk.
    bucket = open_store(current_settings().storage_url).bucket
    outcome = jobs.advance_stage(job_id, "assemble", sha256=sha256, size=file.size,
                                 detected_type=detected.mime, kind=detected.kind,
                                 object_key=object_key(start.job), object_bucket=bucket)  # fmt: skip
    start.closed = outcome == jobs.Advance.ADVANCED
    if start.closed:
        log.info("job %s assembled: %d bytes, %s", job_id, file.size, detected.mime)
