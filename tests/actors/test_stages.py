"""The stage actors called directly: redeliveries do nothing twice, corruption is caught,
lost publishes are re-sent, abandoned uploads expire."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import update

from actors.assemble import assemble
from actors.cleanup import sweep
from actors.extract import extract
from actors.pipeline import job_pipeline
from actors.upload import upload
from models import job as jobs
from models import staging
from models import upload as uploads
from models.db import session_scope, utcnow
from models.errors import FileRejected
from models.settings import Settings
from tests.conftest import TenantKeys

DATA = b"0123456789" * 1000


def staged_job(
    settings: Settings, tenant: TenantKeys, data: bytes = DATA, declared: str | None = None, chunk_size: int = 4096
) -> str:
    """An upload with its chunks on disk and its job, as complete leaves them."""
    with session_scope() as session:
        upload_row = uploads.create_upload(session, tenant.tenant_id, settings, filename="d.txt", size=len(data),
                                           chunk_size=chunk_size, sha256=declared)  # fmt: skip
        for index in range(upload_row.chunk_count):
            piece = data[index * chunk_size : (index + 1) * chunk_size]
            path = staging.chunk_path(settings.staging_dir, upload_row.id, index)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(piece)
            uploads.record_chunk(session, upload_row, index, len(piece), hashlib.sha256(piece).hexdigest())
        return jobs.create_job(session, upload_row)


def run_stage(actor: dramatiq.Actor, job_id: str) -> None:
    with session_scope() as session:
        run = jobs.begin_stage(session, job_id, actor.actor_name, "test:1")
    if run.verdict != jobs.StageVerdict.SKIP:
        actor.fn(job_id)


def load(job_id: str) -> jobs.Job:
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None
        return job


def test_every_stage_is_safe_to_run_twice(settings: Settings, tenant: TenantKeys, stub_broker) -> None:  # type: ignore[no-untyped-def]
    job_id = staged_job(settings, tenant)
    for actor in (assemble, assemble, upload, upload, extract, extract):
        run_stage(actor, job_id)
    job = load(job_id)
    assert job.sha256 == hashlib.sha256(DATA).hexdigest() and job.stage == "notify"
    # The second run of each stage found it done and counted nothing; upload recorded extract's
    # result for this text file, so extract's runs found it done too.
    assert job.attempts == 2 and job.extracted_at is not None
    stored = Path(settings.storage_url.removeprefix("file://")) / (job.object_key or "")
    assert stored.read_bytes() == DATA
    assert not staging.upload_dir(settings.staging_dir, job.upload_id).exists()


@pytest.fixture
def sent(stub_broker, monkeypatch: pytest.MonkeyPatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The actor names of the stage messages the broker is given, in order."""
    names: list[str] = []
    enqueue = stub_broker.enqueue

    def record(message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:
        if message.actor_name in jobs.STAGES:
            names.append(message.actor_name)
        return enqueue(message, delay=delay)

    monkeypatch.setattr(stub_broker, "enqueue", record)
    return names


def test_the_pipeline_passes_over_extract_for_a_kind_it_does_not_parse(  # type: ignore[no-untyped-def]
    settings: Settings, tenant: TenantKeys, drain, sent: list[str]
) -> None:
    job_id = staged_job(settings, tenant)
    job_pipeline(job_id).run()
    drain()
    job = load(job_id)
    assert job.status == jobs.COMPLETED and job.kind == "other"
    assert job.attempts == 2  # assemble and upload (notify counts none)
    assert job.result is not None and job.result["derivatives"] == []
    assert job.result["object"] == {"bucket": job.object_bucket, "key": job.object_key, "size": len(DATA),
                                    "sha256": hashlib.sha256(DATA).hexdigest()}  # fmt: skip
    assert sent == ["assemble", "upload", "notify"]
    assert not staging.upload_dir(settings.staging_dir, job.upload_id).exists()



def test_a_redelivered_upload_passes_over_extract_too(  # type: ignore[no-untyped-def]
    settings: Settings, tenant: TenantKeys, drain, sent: list[str]
) -> None:
    """Its worker died after the commit, before the ack: the second delivery finds the upload
    done and sends the pipeline on past extract, as the first would have."""
    job_id = staged_job(settings, tenant)
    run_stage(assemble, job_id)
    run_stage(upload, job_id)  # the first delivery: committed, never acked, sent nothing on
    job_pipeline(job_id, start="upload").run()  # the redelivery
    drain()
    assert sent == ["upload", "notify"]
    job = load(job_id)
    assert job.status == jobs.COMPLETED and job.attempts == 2  # assemble, one upload


def test_a_corrupted_chunk_on_disk_fails_assemble(settings: Settings, tenant: TenantKeys, stub_broker) -> None:  # type: ignore[no-untyped-def]
    job_id = staged_job(settings, tenant)
    chunk = staging.chunk_path(settings.staging_dir, load(job_id).upload_id, 1)
    chunk.write_bytes(b"X" + chunk.read_bytes()[1:])
    with pytest.raises(FileRejected) as caught:
        run_stage(assemble, job_id)
    assert caught.value.code == "checksum_mismatch" and caught.value.details == {"index": 1}


def test_a_wrong_declared_sha256_fails_assemble(settings: Settings, tenant: TenantKeys, stub_broker) -> None:  # type: ignore[no-untyped-def]
    job_id = staged_job(settings, tenant, declared="0" * 64)
    with pytest.raises(FileRejected) as caught:
        run_stage(assemble, job_id)
    assert caught.value.code == "checksum_mismatch"
    assert caught.value.details["actual"] == hashlib.sha256(DATA).hexdigest()


def test_a_failed_stage_fails_the_job_and_notifies(settings: Settings, tenant: TenantKeys, drain) -> None:  # type: ignore[no-untyped-def]
    job_id = staged_job(settings, tenant, declared="0" * 64)
    assemble.send(job_id)
    drain()
    job = load(job_id)
    assert job.status == jobs.FAILED and job.error_code == "checksum_mismatch"
    assert not staging.upload_dir(settings.staging_dir, job.upload_id).exists()


def test_sweep_resends_a_job_whose_publish_was_lost(settings: Settings, tenant: TenantKeys, stub_broker) -> None:  # type: ignore[no-untyped-def]
    job_id = staged_job(settings, tenant)  # committed, never published
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None
        job.created_at = utcnow() - timedelta(seconds=settings.requeue_after_seconds + 1)
    assert sweep()["resent_jobs"] == 1
    assert stub_broker.queues["chute.assemble"].qsize() == 1
    assert load(job_id).enqueued_at is not None
    assert sweep()["resent_jobs"] == 0


def test_sweep_expires_abandoned_uploads(settings: Settings, tenant: TenantKeys, stub_broker) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as session:
        upload_row = uploads.create_upload(session, tenant.tenant_id, settings, filename="a", size=10)
        upload_row.expires_at = utcnow() - timedelta(seconds=1)
        upload_id = upload_row.id
    chunk = staging.chunk_path(settings.staging_dir, upload_id, 0)
    chunk.parent.mkdir(parents=True)
    chunk.write_bytes(b"x" * 10)
    assert sweep()["expired_uploads"] == 1
    assert not chunk.exists()
    with session_scope() as session:
        assert uploads.get_upload(session, tenant.tenant_id, upload_id).status == uploads.EXPIRED


def test_a_job_that_lost_a_run_runs_alone_and_goes_on(settings: Settings, tenant: TenantKeys, drain) -> None:  # type: ignore[no-untyped-def]
    """A worker that died with this job and others in flight: the job is not charged a crash,
    its next run gets a process of its own, and it completes."""
    job_id = staged_job(settings, tenant)
    with session_scope() as session:
        jobs.begin_stage(session, job_id, "assemble", "dead-worker:1")  # ... and the worker died
    job_pipeline(job_id).run()
    drain()
    job = load(job_id)
    assert job.status == jobs.COMPLETED and job.crashes == 0


def test_a_file_that_kills_its_own_process_fails_its_job(settings: Settings, tenant: TenantKeys, drain) -> None:  # type: ignore[no-untyped-def]
    """Each isolated run's process is SIGKILLed (as the OOM killer would): after
    ``max_stage_crashes`` of those crashes, which are the job's own, it fails. Its first chunk
    is a FIFO nobody writes, so every run hangs reading it until it is killed."""
    job_id = staged_job(settings, tenant)
    chunk = staging.chunk_path(settings.staging_dir, load(job_id).upload_id, 0)
    chunk.unlink()
    os.mkfifo(chunk)
    with session_scope() as session:
        jobs.begin_stage(session, job_id, "assemble", "dead-worker:1")
    stop = threading.Event()
    killed: set[int] = set()

    def killer() -> None:  # kills whichever other process runs this job's stage
        while not stop.is_set():
            with session_scope() as session:
                job = jobs.load_job(session, job_id)
            owner = job.run_owner if job is not None else None
            pid = int(owner.rsplit(":", 1)[1]) if owner else os.getpid()
            if pid != os.getpid() and owner != "dead-worker:1" and pid not in killed:
                killed.add(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stop.wait(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        job_pipeline(job_id).run()
        drain(timeout=120)
    finally:
        stop.set()
        thread.join()
    job = load(job_id)
    assert job.status == jobs.FAILED and job.error_code == "too_many_attempts", (job.status, job.error)
    assert job.crashes == settings.max_stage_crashes and len(killed) == settings.max_stage_crashes
    assert not staging.upload_dir(settings.staging_dir, job.upload_id).exists()


def test_a_lost_multipart_upload_starts_over_on_retry(settings: Settings, tenant: TenantKeys, stub_broker) -> None:  # type: ignore[no-untyped-def]
    """S3 may drop an unfinished multipart upload (a lifecycle rule): the retry begins a new one."""
    import dataclasses

    from actors.storage import MIN_PART_SIZE, open_store
    from models.errors import MultipartGone
    from models.settings import configure

    configure(dataclasses.replace(settings, part_size=MIN_PART_SIZE))
    data = bytes(range(256)) * (MIN_PART_SIZE // 128)  # two parts
    job_id = staged_job(settings, tenant, data)
    run_stage(assemble, job_id)
    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        assert job is not None
        job.object_key = "lost/key.bin"
        job.multipart_id = open_store(settings.storage_url).begin_multipart("lost/key.bin", "text/plain")
        job.parts = []
        lost = job.multipart_id
    open_store(settings.storage_url).abort_multipart("lost/key.bin", lost)
    with pytest.raises(MultipartGone):
        run_stage(upload, job_id)
    assert load(job_id).multipart_id is None
    run_stage(upload, job_id)  # the retry
    stored = Path(settings.storage_url.removeprefix("file://")) / "lost/key.bin"
    assert stored.read_bytes() == data and load(job_id).uploaded_at is not None


def test_a_cancel_during_the_upload_aborts_the_multipart_upload(settings: Settings, tenant: TenantKeys,
                                                                 stub_broker, monkeypatch) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    import dataclasses

    from actors.storage import MIN_PART_SIZE, FileStore
    from models.settings import configure

    configure(dataclasses.replace(settings, part_size=MIN_PART_SIZE))
    job_id = staged_job(settings, tenant, os.urandom(MIN_PART_SIZE * 3))
    run_stage(assemble, job_id)
    send_part = FileStore.upload_part
    cancelled = threading.Event()

    def cancel_first(store: FileStore, *args: object) -> str:
        if not cancelled.is_set():  # the cancel lands while the first part goes up
            cancelled.set()
            with session_scope() as session:
                job = jobs.load_job(session, job_id, for_update=True)
                assert job is not None
                jobs.cancel(job)
        return send_part(store, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FileStore, "upload_part", cancel_first)
    run_stage(upload, job_id)
    job = load(job_id)
    assert cancelled.is_set() and job.status == jobs.CANCELLED and job.uploaded_at is None
    store_root = Path(settings.storage_url.removeprefix("file://"))
    assert not (store_root / (job.object_key or "missing")).exists()
    assert list((store_root / ".multipart").iterdir()) == []  # the multipart upload was aborted


def test_sweep_resumes_a_job_whose_next_stage_message_was_lost(settings: Settings, tenant: TenantKeys,
                                                                drain) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    job_id = staged_job(settings, tenant)
    run_stage(assemble, job_id)  # assemble done; the message for upload never reached the broker
    assert sweep()["resumed_jobs"] == 0  # not stalled yet
    with session_scope() as session:
        session.execute(
            update(jobs.Job).where(jobs.Job.id == job_id)
            .values(updated_at=utcnow() - timedelta(seconds=settings.stall_after_seconds + 1))
        )  # fmt: skip
    assert sweep()["resumed_jobs"] == 1
    drain()
    job = load(job_id)
    assert job.status == jobs.COMPLETED and job.attempts == 2  # upload ran once (and did extract's part)
