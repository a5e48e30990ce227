"""upload: stream the verified chunks to object storage, part by part.

Small files go up in one request. Larger ones use an S3 multipart upload whose id and
finished parts are recorded on the job after every part, so a retry after a storage
outage resumes where it stopped instead of starting over; a cancelled job's upload is
aborted. Memory holds one part at a time, whatever the file's size.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from sqlalchemy.orm import Session

from actors.chunkio import ChunkedFile, staged_file
from actors.cleanup import release_job
from actors.stage import pass_over, stage_actor
from actors.storage import ObjectStore, open_store, part_size_for
from actors.tracking import StageStart
from models import job as jobs
from models import staging
from models import upload as uploads
from models.db import commit_with_flush, session_scope
from models.errors import FileRejected, MultipartGone
from models.settings import current_settings

log = logging.getLogger(__name__)

#: Parts in flight per job, as the minio client's own put_object does: memory stays at
#: PARALLEL_PARTS x part size (24 MiB by default) whatever the file's size.
PARALLEL_PARTS = 3


def object_key(job: jobs.Job | jobs.JobSnapshot) -> str:
    """``{tenant}/{job}/{filename}``: readable in the bucket, unique per job."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", job.filename).strip("._") or "file"
    return f"{job.tenant_id}/{job.id}/{safe[:200]}"


def derivative_key(job: jobs.Job | jobs.JobSnapshot, filename: str) -> str:
    return f"{job.tenant_id}/{job.id}/derivatives/{filename}"


def plain_result(job: jobs.JobSnapshot, bucket: str | None, key: str) -> dict[str, Any]:
    """A job's result before extract adds to it: where the file is stored and what it is. For a
    kind extract does not parse, that is the whole result, and upload records it."""
    return {
        "object": {"bucket": bucket, "key": key, "size": job.size, "sha256": job.sha256},
        "kind": job.kind or "other",
        "mime": job.detected_type or "application/octet-stream",
        "declared_type": job.content_type,
        "derivatives": [],
    }


def prepare_upload(session: Session, job: jobs.JobSnapshot) -> tuple[ChunkedFile, str, str]:
    """Read the chunks, and make sure where the file goes is recorded before any byte goes
    there (a cancel in between then knows what to remove; assemble recorded it, unless the
    store's bucket has changed since): (the staged file, the key, the bucket)."""
    key, bucket = job.object_key or object_key(job), open_store(current_settings().storage_url).bucket
    if (key, bucket) != (job.object_key, job.object_bucket):
        jobs.record_object(session, job.id, key, bucket)
        commit_with_flush(session)  # a cancel must find the key even after a database crash
    return staged_file(job.upload_id, uploads.chunk_manifest(session, job.upload_id)), key, bucket


@stage_actor("upload", prepare=prepare_upload)
def upload(job_id: str, start: StageStart) -> None:
    """Store the file; record bucket and key; remove the staged chunks unless extract reads them
    (for a kind it does not parse, record the result and let the pipeline pass over extract)."""
    settings = current_settings()
    store = open_store(settings.storage_url)
    job = start.job
    parsed = job.kind in staging.EXTRACTED_KINDS
    if job.uploaded_at is not None:  # a redelivery after a crash between storing and cleaning up
        if not parsed:  # else extract reads them, then removes them
            staging.remove_upload(settings.staging_dir, job.upload_id)
            if job.extracted_at is not None:  # recorded with the upload (not by a chute before that)
                pass_over("extract")
        return
    if start.prepared is None:  # the job ended
        return
    file, key, bucket = start.prepared
    content_type = job.detected_type or "application/octet-stream"
    part_size = part_size_for(file.size, settings.part_size)
    multipart = file.size > part_size
    expected = job.sha256 or ""

    if not multipart:
        data = file.read_at(0, file.size)
        _check_digest(job_id, hashlib.sha256(data), expected)
        store.put_stream(key, io.BytesIO(data), file.size, content_type)
    else:
        multipart_id, done_parts = job.multipart_id, [(int(n), str(e)) for n, e in job.parts or []]
        if multipart_id is None:
            multipart_id = _begin_multipart(job_id, store, key, content_type)
        try:
            if not _upload_parts(job_id, store, file, key, multipart_id, done_parts, part_size, expected):
                return  # cancelled: the multipart upload was aborted
        except MultipartGone:
            _forget_multipart(job_id)  # the retry starts a new one
            raise

    # A kind extract does not parse gets its whole result here, and the pipeline passes over
    # extract: a message, a run and two transactions less for such a job.
    extracted: dict[str, Any] = {} if parsed else {"through": "extract", "result": plain_result(job, bucket, key)}
    outcome = jobs.advance_stage(job_id, "upload", multipart_id=None, parts=None, **extracted)
    start.closed = outcome == jobs.Advance.ADVANCED
    if outcome == jobs.Advance.ENDED:  # cancelled while the last bytes went up: the object goes too
        release_job(job_id)
        return
    if not parsed:  # extract reads the chunks of the files it parses, then removes them
        staging.remove_upload(settings.staging_dir, job.upload_id)
        pass_over("extract")
    if start.closed:
        log.info("job %s stored as %s/%s", job_id, store.bucket, key)


def _begin_multipart(job_id: str, store: ObjectStore, key: str, content_type: str) -> str:
    """Start the file's multipart upload and record its id (a retry resumes it)."""
    multipart_id = store.begin_multipart(key, content_type)
    with session_scope() as session:
        recorded = jobs.record_multipart(session, job_id, multipart_id)
    if recorded != multipart_id:  # a duplicate run started one first: use that one
        store.abort_multipart(key, multipart_id)
    return recorded


def _forget_multipart(job_id: str) -> None:
    with session_scope() as session:
        jobs.forget_multipart(session, job_id)
    log.warning("job %s: the store lost its multipart upload; starting over on retry", job_id)


def _upload_parts(
    job_id: str,
    store: ObjectStore,
    file: ChunkedFile,
    key: str,
    multipart_id: str,
    done_parts: list[tuple[int, str]],
    part_size: int,
    expected_sha256: str,
) -> bool:
    """Send the parts not yet stored, ``PARALLEL_PARTS`` at a time; False if the job was cancelled.

    Each finished part is recorded (with progress) at once, in the same transaction that checks
    for a cancel, so a retry resumes after the last recorded part. The parts are read in order
    in this thread and hashed as they are read: what is hashed is what is sent. A part stored by
    an earlier run is read and hashed too, and sent again if its ETag is not the MD5 of the
    bytes now on disk. A file whose bytes are not the ones assemble verified is not completed.
    """
    parts = dict(done_parts)
    count = -(-file.size // part_size)
    numbers = iter(range(1, count + 1))
    whole = hashlib.sha256()
    cancelled = False
    with ThreadPoolExecutor(PARALLEL_PARTS, thread_name_prefix=f"upload-{job_id}") as pool:
        in_flight: dict[Future[str], int] = {}

        def send_next() -> None:
            for number in numbers:
                data = file.read_at((number - 1) * part_size, part_size)
                whole.update(data)
                stored = parts.get(number)
                if stored is not None and stored.strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest():
                    continue
                parts.pop(number, None)
                future = pool.submit(store.upload_part, key, multipart_id, number, (number - 1) * part_size, data)
                in_flight[future] = number
                return

        for _ in range(PARALLEL_PARTS):
            send_next()
        while in_flight and not cancelled:
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                parts[in_flight.pop(future)] = future.result()
            cancelled = not _record_parts(job_id, parts, count)
            for _ in finished:
                send_next()
    if cancelled:
        store.abort_multipart(key, multipart_id)
        log.info("job %s cancelled during upload: multipart upload aborted", job_id)
        return False
    _check_digest(job_id, whole, expected_sha256)
    store.complete_multipart(key, multipart_id, sorted(parts.items()))
    return True


def _check_digest(job_id: str, digest: Any, expected: str) -> None:
    """Refuse to store bytes that are not the ones assemble verified (changed on the staging disk).

    Raises:
        FileRejected: ``checksum_mismatch``; the job fails (its multipart upload is aborted
            with the rest of its storage), since its staged bytes can no longer be trusted.
    """
    actual = digest.hexdigest()
    if expected and actual != expected.lower():
        log.error("job %s: the staged bytes changed after assemble (%s, verified %s)", job_id, actual, expected)
        raise FileRejected(
            "the staged file changed after it was verified; upload it again",
            code="checksum_mismatch",
            details={"expected": expected, "actual": actual, "stage": "upload"},
        )


def _record_parts(job_id: str, parts: dict[int, str], count: int) -> bool:
    """Record the stored parts and the progress; False if the job was cancelled (or is gone)."""
    with session_scope() as session:
        if not jobs.record_parts(session, job_id, sorted([n, e] for n, e in parts.items())):
            return False
        jobs.report_progress(session, job_id, "upload", len(parts) / count)
        return True
