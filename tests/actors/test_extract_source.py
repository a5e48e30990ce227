"""extract reads the staged chunks, not a download of the original, and the chunks live exactly
as long as extract may need them."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.assemble import assemble
from actors.cleanup import remove_leftovers
from actors.extract import extract
from actors.storage import FileStore
from actors.upload import upload
from models import staging
from models.settings import Settings
from tests.actors.extraction import corpus
from tests.actors.test_stages import load, run_stage, staged_job
from tests.conftest import TenantKeys

PHOTO = corpus.photo("JPEG")


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys extract downloaded from the store (it still can, where the staged copy is gone)."""
    keys: list[str] = []
    original = FileStore.download_to

    def counted(self: FileStore, key: str, path: Path) -> None:
        keys.append(key)
        original(self, key, path)

    monkeypatch.setattr(FileStore, "download_to", counted)
    return keys


def stored_job(settings: Settings, tenant: TenantKeys, chunk_size: int = 1024) -> str:
    job_id = staged_job(settings, tenant, PHOTO, chunk_size=chunk_size)
    for actor in (assemble, upload):
        run_stage(actor, job_id)
    return job_id


def staged_dir(settings: Settings, job_id: str) -> Path:
    return staging.upload_dir(settings.staging_dir, load(job_id).upload_id)


def thumbnails(job_id: str) -> set[str]:
    result = load(job_id).result or {}
    return {d["name"] for d in result.get("derivatives", [])}


@pytest.mark.parametrize("chunk_size", [1024, 1 << 20], ids=["joined", "linked"])
@pytest.mark.usefixtures("stub_broker")
def test_extract_reads_the_staged_chunks_then_removes_them(
    settings: Settings, tenant: TenantKeys, downloads: list[str], chunk_size: int
) -> None:
    job_id = stored_job(settings, tenant, chunk_size)
    assert staged_dir(settings, job_id).is_dir()  # upload left them for extract

    run_stage(extract, job_id)

    assert downloads == []
    assert thumbnails(job_id) == {"thumb_256", "thumb_1024", "web"}
    assert not staged_dir(settings, job_id).exists()
    assert not staging.work_dir(settings.staging_dir, job_id).exists()


@pytest.mark.usefixtures("stub_broker")
def test_without_the_staged_chunks_extract_downloads_the_original(
    settings: Settings, tenant: TenantKeys, downloads: list[str]
) -> None:
    """A retry on another machine, or a staging disk cleaned meanwhile."""
    job_id = stored_job(settings, tenant)
    staging.remove_upload(settings.staging_dir, load(job_id).upload_id)

    run_stage(extract, job_id)

    assert downloads == [load(job_id).object_key]
    assert thumbnails(job_id) == {"thumb_256", "thumb_1024", "web"}


@pytest.mark.usefixtures("stub_broker")
def test_staged_chunks_that_changed_are_not_extracted(
    settings: Settings, tenant: TenantKeys, downloads: list[str]
) -> None:
    job_id = stored_job(settings, tenant)
    chunk = staging.chunk_path(settings.staging_dir, load(job_id).upload_id, 1)
    chunk.write_bytes(b"X" + chunk.read_bytes()[1:])

    run_stage(extract, job_id)

    assert downloads == [load(job_id).object_key]
    assert thumbnails(job_id) == {"thumb_256", "thumb_1024", "web"}
    assert not staged_dir(settings, job_id).exists()


@pytest.mark.usefixtures("stub_broker")
def test_a_file_extract_does_not_parse_is_unstaged_once_stored(settings: Settings, tenant: TenantKeys) -> None:
    job_id = staged_job(settings, tenant)  # text
    for actor in (assemble, upload):
        run_stage(actor, job_id)
    assert not staged_dir(settings, job_id).exists()


@pytest.mark.usefixtures("stub_broker")
def test_the_sweeper_keeps_staged_chunks_until_the_job_is_extracted(settings: Settings, tenant: TenantKeys) -> None:
    job_id = stored_job(settings, tenant)
    remove_leftovers()
    assert staged_dir(settings, job_id).is_dir()

    run_stage(extract, job_id)
    staged_dir(settings, job_id).mkdir(parents=True)  # as a crash between extract's commit and its cleanup leaves
    (staged_dir(settings, job_id) / "000000.chunk").write_bytes(b"left behind")
    remove_leftovers()
    assert not staged_dir(settings, job_id).exists()
