"""upload: stream the verified chunks to object storage, part by part.

Small files go up in one request. Larger ones use an S3 multipart upload whose id and
finished parts are recorded on the job after every part, so a retry after a storage
outage resumes where it stopped instead of starting over; a cancelled job's upload is
aborted. Memory holds one part at a time, whatever the file's size.
"""

from __future__ import annotations

import io
import logging
import re
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from actors.assemble import staged_file
from actors.chunkio import ChunkedFile
from actors.stage import stage_actor
from actors.storage import ObjectStore, open_store, part_size_for
from models import job as jobs
from models import staging
from models import upload as uploads
from models.db import session_scope
from models.errors import MultipartGone
from models.settings import current_settings

log = logging.getLogger(__name__)

#: Parts in flight per job, as the minio client's own put_object does: memory stays at
#: PARALLEL_PARTS x part size (24 MiB by default) whatever the file's size.
PARALLEL_PARTS = 3


def object_key(job: jobs.Job) -> str:
    """``{tenant}/{job}/{filename}``: readable in the bucket, unique per job."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", job.filename).strip("._") or "file"
    return f"{job.tenant_id}/{job.id}/{safe[:200]}"


def derivative_key(job: jobs.Job, filename: str) -> str:
    return f"{job.tenant_id}/{job.id}/derivatives/{filename}"


@stage_actor("upload")
def upload(job_id: str) -> None:
    """Store the file; record bucket and key; remove the staged chunks."""
    settings = current_settings()
    store = open_store(settings.storage_url)
    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        if job is None or job.uploaded_at is not None:
            return
        upload_row = session.get(uploads.Upload, job.upload_id)
        assert upload_row is not None
        file = staged_file(upload_row, uploads.chunks(session, job.upload_id))
        content_type = job.detected_type or "application/octet-stream"
        key = job.object_key or object_key(job)
        job.object_key = key
        job.object_bucket = store.bucket
        part_size = part_size_for(file.size, settings.part_size)
        multipart = file.size > part_size
        if multipart and job.multipart_id is None:
            job.multipart_id = store.begin_multipart(key, content_type)
            job.parts = []
        multipart_id = job.multipart_id or ""
        done_parts = [(int(n), str(e)) for n, e in job.parts or []]

    if not multipart:
        store.put_stream(key, io.BytesIO(file.read_at(0, file.size)), file.size, content_type)
    else:
        try:
            if not _upload_parts(job_id, store, file, key, multipart_id, done_parts, part_size):
                return  # cancelled: the multipart upload was aborted
        except MultipartGone:
            _forget_multipart(job_id)  # the retry starts a new one
            raise

    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        if job is None or job.terminal:
            return
        job.multipart_id = None
        job.parts = None
        jobs.advance(job, "upload")
    staging.remove_upload(settings.staging_dir, upload_row.id)
    log.info("job %s stored as %s/%s", job_id, store.bucket, key)


def _forget_multipart(job_id: str) -> None:
    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        if job is not None:
            job.multipart_id = None
            job.parts = None
    log.warning("job %s: the store lost its multipart upload; starting over on retry", job_id)


def _upload_parts(
    job_id: str,
    store: ObjectStore,
    file: ChunkedFile,
    key: str,
    multipart_id: str,
    done_parts: list[tuple[int, str]],
    part_size: int,
) -> bool:
    """Send the parts not yet stored, ``PARALLEL_PARTS`` at a time; False if the job was cancelled.

    Each finished part is recorded (with progress) at once, in the same transaction that checks
    for a cancel, so a retry resumes after the last recorded part.
    """
    parts = dict(done_parts)
    count = -(-file.size // part_size)
    todo = iter([n for n in range(1, count + 1) if n not in parts])
    cancelled = False
    with ThreadPoolExecutor(PARALLEL_PARTS, thread_name_prefix=f"upload-{job_id}") as pool:
        in_flight: dict[Future[str], int] = {}

        def send_next() -> None:
            number = next(todo, None)
            if number is not None:
                offset = (number - 1) * part_size
                future = pool.submit(_send_part, store, file, key, multipart_id, number, offset, part_size)
                in_flight[future] = number

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
    store.complete_multipart(key, multipart_id, sorted(parts.items()))
    return True


def _send_part(
    store: ObjectStore, file: ChunkedFile, key: str, multipart_id: str, number: int, offset: int, size: int
) -> str:
    return store.upload_part(key, multipart_id, number, offset, file.read_at(offset, size))


def _record_parts(job_id: str, parts: dict[int, str], count: int) -> bool:
    """Record the stored parts and the progress; False if the job was cancelled (or is gone)."""
    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        if job is None or job.status == jobs.CANCELLED:
            return False
        job.parts = sorted([n, e] for n, e in parts.items())
        jobs.report_progress(session, job_id, "upload", len(parts) / count)
        return True
