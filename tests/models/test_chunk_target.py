"""What a chunk PUT reads of its upload and writes of its chunk, without the ORM, on SQLite and
PostgreSQL: the same layout the ORM entity gives, the tenant's own uploads only, the row locked
for the write, and a re-sent chunk replacing the first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models import upload as uploads
from models.db import session_scope, utcnow
from models.errors import NotFound
from models.ids import new_id
from models.settings import Settings
from tests.conftest import TenantKeys


def new_upload(settings: Settings, keys: TenantKeys) -> str:
    with session_scope() as session:
        return uploads.create_upload(session, keys.tenant_id, settings, filename="a.bin", size=40, chunk_size=16).id


def test_it_reads_the_layout_the_entity_has(settings: Settings, keys: TenantKeys) -> None:
    upload_id = new_upload(settings, keys)
    target = uploads.chunk_target(keys.tenant_id, upload_id)
    with session_scope() as session:
        entity = uploads.get_upload(session, keys.tenant_id, upload_id)
        assert (target.id, target.status, target.expires_at, target.size, target.chunk_size, target.chunk_count,
                target.offset) == (entity.id, entity.status, entity.expires_at, 40, 16, 3, None)  # fmt: skip
        locked = uploads.lock_chunk_target(session, keys.tenant_id, upload_id)
    assert locked == target and not target.is_tus
    assert [target.expected_chunk_size(i) for i in range(3)] == [16, 16, 8]
    assert target.expires_at.tzinfo is not None
    uploads.ensure_receiving(target)
    assert uploads.check_chunk_index(target, 2) == 8


def test_another_tenants_upload_is_not_found(settings: Settings, keys: TenantKeys) -> None:
    upload_id = new_upload(settings, keys)
    with pytest.raises(NotFound, match="no upload"):
        uploads.chunk_target("ten_other", upload_id)
    with session_scope() as session, pytest.raises(NotFound):
        uploads.lock_chunk_target(session, "ten_other", upload_id)


def test_a_chunk_sent_again_replaces_the_first(settings: Settings, keys: TenantKeys) -> None:
    upload_id = new_upload(settings, keys)
    for sha in ("aa" * 32, "bb" * 32):
        with session_scope() as session:
            target = uploads.lock_chunk_target(session, keys.tenant_id, upload_id)
            uploads.record_chunk(session, target, 1, 16, sha)
    with session_scope() as session:
        assert uploads.chunk_manifest(session, upload_id) == [uploads.ChunkEntry(1, 16, "bb" * 32)]


def test_a_chunk_of_an_upload_the_session_has_not_flushed_is_recorded_after_it(settings: Settings,
                                                                             keys: TenantKeys) -> None:  # fmt: skip
    """The manifest row's insert runs on the driver's connection: an upload the session holds
    unflushed (tus concatenation's final upload) is written first, as through the session."""
    with session_scope() as session:
        upload = uploads.Upload(id=new_id("upl"), tenant_id=keys.tenant_id, filename="a.bin", size=16, chunk_size=16,
                                chunk_count=1, expires_at=utcnow() + timedelta(hours=1))  # fmt: skip
        session.add(upload)
        uploads.record_chunk(session, upload, 0, 16, "cc" * 32)
    with session_scope() as session:
        assert [c.index for c in uploads.chunk_manifest(session, upload.id)] == [0]
