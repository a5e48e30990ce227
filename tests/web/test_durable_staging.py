"""An upload's staged bytes are durable under the names its job reads before the job exists.

A file's fsync makes its bytes durable, not its name: the rename into the upload's directory and
that directory's own entry in ``uploads/`` are durable only once those directories are synced.
Both ways in (the chunked upload's complete and the one-shot ``POST /v1/jobs``) go through
``models.staging.sync_upload``; these tests record what it syncs, and when.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy import make_url

from models import staging
from models.db import session_scope
from models.settings import Settings, current_settings
from models.tenant import issue_key
from tests.conftest import TenantKeys
from tests.support.uploading import chunked_upload
from web import create_app


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> list[tuple[Path, int]]:
    """Every path fsynced through ``models.staging``, with the number of committed jobs then."""
    seen: list[tuple[Path, int]] = []
    database = make_url(settings.database_url).database
    assert database is not None

    def observe(fd: int) -> None:
        # A reader of its own: the request's session holds SQLite's write lock meanwhile.
        with contextlib.closing(sqlite3.connect(database)) as reader:
            (jobs,) = reader.execute("SELECT count(*) FROM jobs").fetchone()
        seen.append((Path(os.readlink(f"/proc/self/fd/{fd}")), jobs))

    _before_each_fsync(monkeypatch, observe)
    return seen


def _before_each_fsync(monkeypatch: pytest.MonkeyPatch, observe: Callable[[int], None]) -> None:
    """Call ``observe(fd)`` before every fsync through ``models.staging``."""
    real = os.fsync

    def fsync(fd: int) -> None:
        observe(fd)
        real(fd)

    monkeypatch.setattr(staging.os, "fsync", fsync)


def _expected(settings: Settings, upload_id: str) -> set[Path]:
    directory = staging.upload_dir(settings.staging_dir, upload_id).resolve()
    return {*directory.glob("*.chunk"), directory, directory.parent}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files' paths from /proc")
def test_a_one_shot_upload_syncs_its_file_and_both_directories_before_its_job_exists(
    client: FlaskClient, tenant: TenantKeys, settings: Settings, stub_broker: Any, synced: list[tuple[Path, int]]
) -> None:
    form = {"file": [(io.BytesIO(b"durable bytes"), "note.txt")]}
    response = client.post("/v1/jobs", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    upload_id = response.get_json()["jobs"][0]["upload_id"]

    expected = _expected(settings, upload_id)
    assert len(expected) == 3  # the chunk, its directory, uploads/
    assert {path for path, _ in synced} == expected
    assert all(jobs == 0 for _, jobs in synced)  # all before the job's row was committed


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files' paths from /proc")
def test_a_chunked_upload_syncs_its_chunks_and_both_directories_at_complete(
    api: Any, settings: Settings, stub_broker: Any, synced: list[tuple[Path, int]]
) -> None:
    upload = chunked_upload(api, b"x" * 10_000, filename="three.bin", chunk_size=4096)

    expected = _expected(settings, upload["upload_id"])
    assert len(expected) == 5  # three chunks, their directory, uploads/
    assert {path for path, _ in synced} == expected
    assert all(jobs == 0 for _, jobs in synced)


@pytest.fixture
def tenant_locked_at_fsync(monkeypatch: pytest.MonkeyPatch, on_postgres: str) -> list[bool]:
    """For every fsync through ``models.staging``, on PostgreSQL: whether a tenant's row was
    locked then (every submit of the tenant waits for that lock)."""
    seen: list[bool] = []
    dsn = make_url(on_postgres).set(drivername="postgresql").render_as_string(hide_password=False)

    def observe(fd: int) -> None:
        with psycopg.connect(dsn) as probe:
            try:
                probe.execute("SELECT 1 FROM tenants FOR UPDATE NOWAIT")
                seen.append(False)
            except psycopg.errors.LockNotAvailable:
                seen.append(True)

    _before_each_fsync(monkeypatch, observe)
    return seen


@pytest.fixture
def postgres_api(on_postgres: str, stub_broker: Any) -> Any:
    """``api(method, path, data=)`` → (status, JSON body), as a tenant of a chute on PostgreSQL."""
    client = create_app(current_settings()).test_client()
    with session_scope() as session:
        auth = {"Authorization": f"Bearer {issue_key(session, 'acme').api_key}"}

    def call(method: str, path: str, *, data: Any = None, json: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
        response = client.open(path, method=method, data=data, json=json, headers={**auth, **(headers or {})})
        return response.status_code, response.get_json(silent=True)

    return call


def test_a_one_shot_upload_is_made_durable_before_the_tenants_lock(
    postgres_api: Any, tenant_locked_at_fsync: list[bool]
) -> None:
    files = [(io.BytesIO(b"durable bytes"), "note.txt"), (io.BytesIO(b"more bytes"), "more.txt")]
    status, body = postgres_api("POST", "/v1/jobs", data={"file": files})

    assert status == 202, body
    assert len(tenant_locked_at_fsync) == 6  # per file: the chunk, its directory, uploads/
    assert not any(tenant_locked_at_fsync)


def test_a_chunked_upload_is_made_durable_before_the_tenants_lock(
    postgres_api: Any, tenant_locked_at_fsync: list[bool]
) -> None:
    upload = chunked_upload(postgres_api, b"x" * 10_000, filename="three.bin", chunk_size=4096)

    assert upload["status"] == "queued", upload
    assert len(tenant_locked_at_fsync) == 5  # three chunks, their directory, uploads/
    assert not any(tenant_locked_at_fsync)


def test_a_full_disk_at_a_files_sync_keeps_nothing_of_the_request(
    client: FlaskClient, tenant: TenantKeys, settings: Settings, stub_broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = staging.sync_upload, []

    def sync_upload(staging_dir: str, upload_id: str) -> None:
        calls.append(upload_id)
        if len(calls) == 2:  # the second file's: the first one is staged by then
            raise OSError(errno.ENOSPC, "No space left on device")
        real(staging_dir, upload_id)

    monkeypatch.setattr(staging, "sync_upload", sync_upload)
    files = [(io.BytesIO(b"first file"), "one.txt"), (io.BytesIO(b"second file"), "two.txt")]
    response = client.post("/v1/jobs", data={"file": files}, headers=tenant.headers, content_type="multipart/form-data")

    assert response.status_code == 507, response.get_json()
    assert response.get_json()["error"]["code"] == "insufficient_storage"
    assert len(calls) == 2
    assert [path for path in Path(settings.staging_dir).rglob("*") if path.is_file()] == []
    listed = client.get("/v1/jobs", headers=tenant.headers).get_json()
    assert listed["jobs"] == []
