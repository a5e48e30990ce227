"""extract: what users get out of a file: PDF text and metadata, image facts and thumbnails.

The type comes from the file's bytes (found by assemble), never from its name. PDFs and
images are taken from the staged chunks (or, where those are gone, the store) into scratch
space and parsed by ``actors.extraction``, which bounds a hostile file in time and memory;
derivatives go next to the original. The staged chunks go once the job is extracted.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import uuid
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from actors.chunkio import ChunkedFile, staged_file
from actors.cleanup import release_job
from actors.extract_source import fetch_source
from actors.extraction import Extraction, ExtractLimits, extract_file
from actors.extraction.ocr import probe
from actors.stage import stage_actor
from actors.storage import ObjectStore, open_store
from actors.tracking import StageStart
from actors.upload import derivative_key, plain_result
from models import job as jobs
from models import staging
from models import upload as uploads
from models.settings import current_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractInput:
    """What extract reads where its run is recorded: the OCR mode the upload asked for, and the
    staged chunks by the upload's manifest (none for a kind extract does not parse)."""

    ocr_mode: str
    staged: ChunkedFile


def read_extract_input(session: Session, job: jobs.JobSnapshot) -> ExtractInput:
    if (job.kind or "other") not in staging.EXTRACTED_KINDS:
        return ExtractInput(uploads.ocr_mode(session, job.upload_id), staged_file(job.upload_id, []))
    ocr_mode, manifest = uploads.ocr_mode_and_manifest(session, job.upload_id)
    return ExtractInput(ocr_mode, staged_file(job.upload_id, manifest))


@stage_actor("extract", prepare=read_extract_input)
def extract(job_id: str, start: StageStart) -> None:
    """Extract, store the derivatives, and record the result on the job."""
    settings = current_settings()
    store = open_store(settings.storage_url)
    job = start.job
    if job.extracted_at is not None or start.prepared is None:
        return
    prepared: ExtractInput = start.prepared
    key, kind = job.object_key, job.kind or "other"
    upload_id = job.upload_id
    assert key is not None
    result = plain_result(job, job.object_bucket, key)
    # A scratch directory of this run's own: a duplicate delivery running at the same time
    # (a re-sent message) must not read or delete this run's files.
    scratch = staging.run_dir(settings.staging_dir, job_id, uuid.uuid4().hex)

    if kind in staging.EXTRACTED_KINDS:
        (scratch / "out").mkdir(parents=True)
        try:
            source = scratch / "source"
            fetch_source(store, key, prepared.staged, job.size, job.sha256, source)
            tesseract = probe(tuple(settings.ocr_languages)).command
            limits = ExtractLimits.from_settings(settings, ocr_mode=prepared.ocr_mode, tesseract=tesseract)
            extraction = extract_file(source, scratch / "out", limits)
            result.update(_store_extraction(store, job, extraction))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            with contextlib.suppress(OSError):
                scratch.parent.rmdir()  # the job's directory, once no run uses it

    outcome = jobs.advance_stage(job_id, "extract", result=result)
    # DONE: another run finished first; its derivatives have the same keys.
    start.closed = outcome == jobs.Advance.ADVANCED
    if outcome == jobs.Advance.ENDED:  # cancelled while extracting: the derivatives just stored go with the rest
        release_job(job_id)
        return
    staging.remove_upload(settings.staging_dir, upload_id)
    if start.closed:
        log.info("job %s extracted (%s)", job_id, kind)


@functools.cache
def _putters() -> ThreadPoolExecutor:
    """This process's threads that store derivatives (made on first use: after the worker forked)."""
    return ThreadPoolExecutor(max_workers=current_settings().worker_threads * 2, thread_name_prefix="chute-put")


def _store_derivatives(store: ObjectStore, job: jobs.JobSnapshot, extraction: Extraction) -> list[str]:
    """Put the derivatives next to the original, all at once; their keys, in order.

    Each put waits on the store, not on the CPU: one after the other, an image's three made its
    extract stage wait three round trips where one does. Every put has ended when this returns
    or raises (the first failure), so none reads a scratch file after the stage removed it.
    """
    keys = [derivative_key(job, d.filename) for d in extraction.derivatives]
    if len(keys) < 2:
        for key, d in zip(keys, extraction.derivatives, strict=True):
            store.put_file(key, Path(d.path), d.content_type)
        return keys
    puts = [_putters().submit(store.put_file, key, Path(d.path), d.content_type)
            for key, d in zip(keys, extraction.derivatives, strict=True)]  # fmt: skip
    futures.wait(puts)
    for put in puts:
        put.result()
    return keys


def _store_extraction(store: ObjectStore, job: jobs.JobSnapshot, extraction: Extraction) -> dict[str, Any]:
    """Upload the derivatives next to the original and shape the result."""
    derivatives = []
    for key, d in zip(_store_derivatives(store, job, extraction), extraction.derivatives, strict=True):
        derivatives.append(
            {
                "name": d.name,
                "filename": d.filename,
                "content_type": d.content_type,
                "width": d.width,
                "height": d.height,
                "size": Path(d.path).stat().st_size,
                "key": key,
            }
        )
    out: dict[str, Any] = {"kind": extraction.kind, "mime": extraction.mime, "derivatives": derivatives}
    if extraction.document is not None:
        out["document"] = extraction.document  # page text already trimmed to the result budget
    if extraction.image is not None:
        out["image"] = extraction.image
    if extraction.ocr is not None:
        out["ocr"] = extraction.ocr
        out["ocr_error"] = extraction.ocr_error
    return out
