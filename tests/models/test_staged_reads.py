"""What a stage reads of its upload at the start of a run, in one select each: the upload's
checked columns with its chunk manifest in order (assemble), the OCR mode with it (extract)."""

from __future__ import annotations

from models import upload as uploads
from models.db import session_scope
from models.settings import Settings
from tests.conftest import TenantKeys


def new_upload(settings: Settings, keys: TenantKeys, chunks: list[int], **fields: object) -> str:
    """An upload of four 16-byte chunks of which ``chunks`` arrived (in that order)."""
    with session_scope() as session:
        upload = uploads.create_upload(session, keys.tenant_id, settings, filename="a.pdf", size=64, chunk_size=16,
                                       sha256="cd" * 32, **fields)  # type: ignore[arg-type]  # fmt: skip
        for index in chunks:
            uploads.record_chunk(session, upload, index, 16, f"{index:064x}")
        return upload.id


def test_assemble_reads_the_upload_and_its_chunks_in_order(settings: Settings, keys: TenantKeys) -> None:
    upload_id = new_upload(settings, keys, [2, 0, 3, 1], allowed_types=["application/pdf"])
    with session_scope() as session:
        staged = uploads.staged_upload(session, upload_id)
        assert uploads.staged_upload(session, "upl_none") is None
    assert staged is not None
    assert (staged.id, staged.chunk_count, staged.sha256, staged.allowed_types) == (
        upload_id, 4, "cd" * 32, ["application/pdf"]
    )  # fmt: skip
    assert staged.chunks == [uploads.ChunkEntry(i, 16, f"{i:064x}") for i in range(4)]


def test_an_upload_without_chunks_reads_as_one(settings: Settings, keys: TenantKeys) -> None:
    upload_id = new_upload(settings, keys, [], ocr="always")
    with session_scope() as session:
        staged = uploads.staged_upload(session, upload_id)
        assert uploads.ocr_mode_and_manifest(session, upload_id) == ("always", [])
    assert staged is not None and staged.chunks == [] and staged.chunk_count == 4


def test_extract_reads_the_ocr_mode_with_the_manifest(settings: Settings, keys: TenantKeys) -> None:
    upload_id = new_upload(settings, keys, [1, 0], ocr="never")
    with session_scope() as session:
        mode, manifest = uploads.ocr_mode_and_manifest(session, upload_id)
        assert (mode, manifest) == (uploads.ocr_mode(session, upload_id), uploads.chunk_manifest(session, upload_id))
        assert uploads.ocr_mode_and_manifest(session, "upl_none") == ("auto", [])
        assert uploads.ocr_mode(session, "upl_none") == "auto"
    assert mode == "never" and [c.index for c in manifest] == [0, 1]
