"""tus storage on chute's own upload model, behind a small interface (tusd's ``DataStore``).

``new_upload``, ``write_chunk``, ``get_info``, ``terminate`` and ``concatenate`` are all the
views in web/tus.py call. Underneath, a tus upload is an ordinary upload (models/tus.py): one
staging directory, one chunk manifest, one assemble; its last byte creates and starts the job
exactly as ``POST /v1/uploads/{id}/complete`` does, once.

Each PATCH streams its body to a temporary file in the upload's staging directory in 1 MiB
blocks, hashing it (sha256 for the manifest, plus the client's ``Upload-Checksum`` algorithm)
as it goes, and costs two database round trips: one read before the body, one short
transaction after it. A PATCH cut off midway keeps what reached the disk (unless it carried
a checksum, which the partial body cannot match): those bytes become a chunk, so HEAD reports
them and the client resumes after them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from werkzeug.exceptions import ClientDisconnected

from actors.pipeline import publish_job
from models import job as jobs
from models import staging, tus
from models import upload as uploads
from models.db import read_scope, session_scope, utcnow
from models.errors import BadRequest, BrokerUnavailable, NotFound, TooLarge
from models.settings import current_settings
from web.staging_io import HashingWriter, copy_body, temp_path
from web.tus_protocol import Checksum, TusError

log = logging.getLogger(__name__)

#: The lock file in an upload's staging directory.
LOCK_FILE = ".lock"
#: How long a request waits for another one holding the upload (a PATCH whose client vanished
#: ends as soon as the server sees the connection gone).
LOCK_WAIT_SECONDS = 20.0
LOCK_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class UploadInfo:
    """What HEAD and the other answers tell about one upload (tusd's ``FileInfo``)."""

    id: str
    offset: int
    size: int | None
    concat: str | None
    parts: tuple[str, ...]
    expires_at: datetime
    filename: str
    content_type: str | None
    job_id: str | None
    status: str

    @classmethod
    def of(cls, upload: uploads.Upload) -> UploadInfo:
        parts = tuple(upload.concat_parts or ())
        return cls(upload.id, upload.offset or 0, None if upload.length_deferred else upload.size, upload.concat,
                   parts, upload.expires_at, upload.filename, upload.content_type, upload.job_id,
                   upload.status)  # fmt: skip


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return function  # type: ignore[no-any-return]


#: Linux's sync_file_range(2), to start writing a range back to disk without waiting for it.
SYNC_FILE_RANGE = _sync_file_range()
SYNC_FILE_RANGE_WRITE = 2
#: Bytes written before their writeback is started.
WRITEBACK_STEP = 16 * 1024 * 1024


class ChecksumWriter(HashingWriter):
    """A staging file hashed with sha256 (the manifest's) and, optionally, the client's algorithm.

    The job's bytes are fsynced before it starts; left to the kernel, all of them would still be
    dirty in memory then, and the client would wait for the whole file to reach the disk after
    its last byte. Writing back every :data:`WRITEBACK_STEP` as it arrives overlaps the disk with
    the network, so that fsync finds little left to do.
    """

    def __init__(self, path: Any, checksum: Checksum | None):
        super().__init__(path)
        self.checksum = checksum
        self.extra = checksum.hasher() if checksum is not None else None
        self.written_back = 0

    def write(self, data: bytes | memoryview) -> int:
        if self.extra is not None:
            self.extra.update(data)
        count = super().write(data)
        if self.size - self.written_back >= WRITEBACK_STEP:
            self.write_back()
        return count

    def write_back(self) -> None:
        """Start writing what is not on its way to the disk yet (without waiting for it)."""
        if SYNC_FILE_RANGE is None or self.file.closed or self.size == self.written_back:
            return
        self.file.flush()
        SYNC_FILE_RANGE(self.file.fileno(), self.written_back, self.size - self.written_back, SYNC_FILE_RANGE_WRITE)
        self.written_back = self.size

    def matches(self) -> bool:
        return self.checksum is None or self.extra.digest() == self.checksum.digest  # type: ignore[union-attr]


class TusStore:
    """One tenant's (or one upload token's) tus uploads."""

    def __init__(self, tenant_id: str, creator: str | None = None):
        self.tenant_id = tenant_id
        #: An upload token's id: it sees only the uploads it created.
        self.creator = creator
        self.settings = current_settings()

    # --- DataStore ---------------------------------------------------------------------

    def new_upload(self, session: Any, **fields: Any) -> uploads.Upload:
        """Open an upload (in the caller's transaction, so scope checks and the row commit together)."""
        return tus.create(session, self.tenant_id, self.settings, **fields)

    def get_info(self, upload_id: str) -> UploadInfo:
        """Where the upload stands, once any PATCH still writing to it has finished.

        Raises:
            NotFound: an unknown, another tenant's, or a terminated upload.
            TusError: 410 once expired; 423 while another request holds it too long.
        """
        with self._locked(upload_id, exclusive=False), read_scope() as session:
            upload = self._get(session, upload_id)
            self._ensure_live(upload)
            return UploadInfo.of(upload)

    def declare_length(self, upload_id: str, length: int, admit: Any = None) -> None:
        """Fix a deferred length (creation-defer-length); ``admit(session, length, content_type)``
        counts it against the caller's scope in the same transaction. A length already known
        must be the same.

        Raises:
            BadRequest: a different length, or less than the bytes already received.
            TooLarge: over the server's (or the scope's) limit.
        """
        with session_scope() as session:
            upload = self._get(session, upload_id, for_update=True)
            self._ensure_live(upload)
            if not upload.length_deferred:
                if upload.size != length:
                    raise BadRequest("Upload-Length differs from the upload's length", code="invalid_header",
                                     details={"header": "Upload-Length", "length": upload.size})  # fmt: skip
                return
            tus.declare_length(upload, self.settings, length)
            if admit is not None:
                admit(session, length, upload.content_type)

    def write_chunk(
        self, upload_id: str, offset: int, body: IO[bytes], *, content_length: int | None,
        checksum: Checksum | None, max_size: int | None = None,
    ) -> UploadInfo:  # fmt: skip
        """Append ``body`` at ``offset``; when it brings the last byte, start the upload's job.

        ``max_size`` is the caller's limit on a file whose length is not known yet.

        Raises:
            Conflict: ``offset`` is not where the upload ends (409), or it is not receiving.
            TooLarge: more bytes than the upload's length, or than the limit of a deferred one.
            TusError: 460 when the body does not match ``checksum`` (nothing is kept); 403 for
                a final upload.
        """
        with self._locked(upload_id, exclusive=True):
            return self._write(upload_id, offset, body, content_length, checksum, max_size)

    def _write(self, upload_id: str, offset: int, body: IO[bytes], content_length: int | None,
               checksum: Checksum | None, max_size: int | None) -> UploadInfo:  # fmt: skip
        with read_scope() as session:
            upload = self._get(session, upload_id)
            self._ensure_live(upload)
            if upload.concat == tus.FINAL:
                raise TusError(403, "a final upload is made of its partial uploads: PATCH them", code="final_upload")
            tus.check_offset(upload, offset)
            if upload.length_deferred:
                room = min(self.settings.max_upload_size, max_size or self.settings.max_upload_size) - offset
            else:
                room = upload.size - offset
        if content_length is not None and content_length > room:
            raise TooLarge(f"{content_length} bytes from offset {offset} pass the upload's end",
                           code="upload_length_exceeded", details={"room": room})  # fmt: skip
        writer = ChecksumWriter(temp_path(staging.upload_dir(self.settings.staging_dir, upload_id), "tus"), checksum)
        interrupted = False
        try:
            try:
                copy_body(body, writer, room)
            except (ClientDisconnected, OSError):
                interrupted = True
                log.info("tus upload %s: PATCH cut off after %d bytes", upload_id, writer.size)
            if writer.size > room:
                raise TooLarge(f"more than {room} bytes from offset {offset}", code="upload_length_exceeded",
                               details={"room": room})  # fmt: skip
            if checksum is not None and (interrupted or not writer.matches()):
                raise TusError(460, "the body does not match Upload-Checksum; nothing was kept",
                               code="checksum_mismatch", details={"algorithm": checksum.algorithm})  # fmt: skip
            return self._commit(upload_id, offset, writer)
        finally:
            if writer.path.exists():
                writer.discard()

    def terminate(self, upload_id: str) -> None:
        """Cancel the upload (and its job, if any) and remove its bytes (tus termination)."""
        from actors.cancel import cancel_upload

        with read_scope() as session:
            self._get(session, upload_id)
        cancel_upload(self.tenant_id, upload_id)

    def concat_size(self, session: Any, part_ids: tuple[str, ...]) -> int:
        """The size a final upload of ``part_ids`` will have (locking the partials).

        Raises:
            NotFound: a part that is no tus upload of this caller (as for any upload id).
            BadRequest: a part that is not a finished partial upload.
        """
        partials = [self._get(session, pid, for_update=True) for pid in dict.fromkeys(part_ids)]
        for part in partials:
            self._ensure_live(part)
        return tus.check_partials(part_ids, partials)

    def concatenate(self, session: Any, part_ids: tuple[str, ...], total: int, **fields: Any) -> uploads.Upload:
        """A final upload made of finished partial uploads (checked by ``concat_size`` in this
        transaction); their chunk files are hard-linked, so each partial stays whole. The
        caller starts its job.
        """
        partials = {pid: self._get(session, pid) for pid in part_ids}
        final = self.new_upload(session, size=total, concat=tus.FINAL, concat_parts=list(part_ids), **fields)
        parts = [(partials[pid], uploads.chunk_manifest(session, pid)) for pid in part_ids]
        try:
            for source, index, target in tus.adopt_chunks(session, final, parts):
                self._link(source, index, final.id, target)
        except BaseException:
            staging.remove_upload(self.settings.staging_dir, final.id)
            raise
        return final

    # --- the job --------------------------------------------------------------------------

    def start_job(self, session: Any, upload: uploads.Upload) -> str:
        """Create the job of a finished upload (in the caller's transaction, under its row lock)."""
        staging.sync_upload(self.settings.staging_dir, upload.id)
        return jobs.create_job(session, upload)

    @staticmethod
    def publish(job_id: str) -> None:
        """Send the job; a broker outage is left to the sweeper, which re-sends unconfirmed jobs
        (the client cannot ask again: to tus the upload is done)."""
        try:
            publish_job(job_id)
        except BrokerUnavailable:
            log.warning("job %s: publish failed; the sweeper will send it", job_id, exc_info=True)

    # --- helpers --------------------------------------------------------------------------

    def _commit(self, upload_id: str, offset: int, writer: ChecksumWriter) -> UploadInfo:
        job_id = None
        with session_scope() as session:
            upload = self._get(session, upload_id, for_update=True)
            self._ensure_live(upload)
            if writer.size:
                writer.write_back()  # the tail too: a final upload or the job's fsync comes next
                index = upload.chunk_count
                tus.check_offset(upload, offset)
                writer.finish(staging.chunk_path(self.settings.staging_dir, upload_id, index))
                tus.append(session, upload, offset, writer.size, writer.sha256)
            if tus.finished(upload) and upload.concat is None and upload.job_id is None:
                job_id = self.start_job(session, upload)
            info = UploadInfo.of(upload)
        if job_id is not None:
            self.publish(job_id)
        return info

    def _get(self, session: Any, upload_id: str, *, for_update: bool = False) -> uploads.Upload:
        upload = uploads.get_upload(session, self.tenant_id, upload_id, for_update=for_update)
        mine = self.creator is None or upload.credential_id == self.creator
        if not mine or not upload.is_tus or upload.status == uploads.CANCELLED:
            raise NotFound(f"no tus upload {upload_id}", code="upload_not_found")
        return upload

    @contextlib.contextmanager
    def _locked(self, upload_id: str, *, exclusive: bool) -> Iterator[None]:
        """Hold the upload's lock: a PATCH exclusively while it writes, a HEAD shared.

        A client that lost its connection mid-PATCH retries at once, while the server may still
        be storing what arrived: its HEAD waits here for that PATCH to finish, so the offset it
        reads is the truth (tusd does the same with its upload locks). The lock is a file in the
        upload's staging directory, so every web process on the shared staging disk sees it.

        Raises:
            NotFound: no such upload (checked before a directory is made for it).
            TusError: 423 when the lock is not free within :data:`LOCK_WAIT_SECONDS`.
        """
        directory = staging.upload_dir(self.settings.staging_dir, upload_id)
        if not directory.exists():
            with read_scope() as session:
                self._get(session, upload_id)
            directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TusError(423, "another request is writing to this upload", code="upload_locked") from None
                    time.sleep(LOCK_POLL_SECONDS)
            yield
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _ensure_live(upload: uploads.Upload) -> None:
        if upload.status == uploads.EXPIRED or (upload.status == uploads.RECEIVING and upload.job_id is None
                                                and upload.expires_at <= utcnow()):  # fmt: skip
            raise TusError(410, "the upload has expired", code="upload_expired",
                           details={"expires_at": upload.expires_at.isoformat()})  # fmt: skip

    def _link(self, source_id: str, source_index: int, target_id: str, target_index: int) -> None:
        source = staging.chunk_path(self.settings.staging_dir, source_id, source_index)
        target = staging.chunk_path(self.settings.staging_dir, target_id, target_index)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(source, target)
