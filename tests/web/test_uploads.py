"""Chunked uploads through the HTTP API, on the StubBroker."""

from __future__ import annotations

import os
from pathlib import Path

from models.settings import Settings
from tests.conftest import TenantKeys
from tests.support.uploading import chunked_upload, chunks_of, content_digest, sha256

DATA = os.urandom(100_000)


def staged_files(settings: Settings, upload_id: str) -> list[str]:
    directory = Path(settings.staging_dir) / "uploads" / upload_id
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_create_upload_lays_out_chunks(api) -> None:  # type: ignore[no-untyped-def]
    status, body = api("POST", "/v1/uploads", json={"filename": "a.bin", "size": 100_000, "chunk_size": 30_000})
    assert status == 201
    assert body["chunk_count"] == 4 and body["chunk_size"] == 30_000 and body["status"] == "receiving"
    assert body["upload_id"].startswith("upl_") and body["expires_at"].endswith("Z")


def test_chunks_in_any_order_then_resume_info(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000, order=[3, 1], complete=False)
    status, info = api("GET", f"/v1/uploads/{out['upload_id']}")
    assert status == 200
    assert info["received"] == [1, 3] and info["missing"] == [0, 2]
    assert info["bytes_received"] == 30_000 + 10_000 and info["job_id"] is None
    assert staged_files(settings, out["upload_id"]) == ["000001.chunk", "000003.chunk"]


def test_digest_mismatch_is_422_and_nothing_is_stored(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000, order=[], complete=False)
    piece = DATA[:30_000]
    status, body = api("PUT", f"/v1/uploads/{out['upload_id']}/chunks/0", data=piece,
                       headers={"Content-Digest": content_digest(b"something else")})  # fmt: skip
    assert status == 422 and body["error"]["code"] == "checksum_mismatch"
    assert body["error"]["details"]["actual"] == sha256(piece)
    assert staged_files(settings, out["upload_id"]) == []
    status, info = api("GET", f"/v1/uploads/{out['upload_id']}")
    assert info["received"] == []


def test_resent_chunk_replaces_the_old_one(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000, order=[], complete=False)
    path = f"/v1/uploads/{out['upload_id']}/chunks/0"
    assert api("PUT", path, data=b"x" * 30_000)[0] == 200
    status, body = api("PUT", path, data=DATA[:30_000])
    assert status == 200 and body["sha256"] == sha256(DATA[:30_000])
    stored = Path(settings.staging_dir) / "uploads" / out["upload_id"] / "000000.chunk"
    assert stored.read_bytes() == DATA[:30_000]


def test_wrong_chunk_size_and_index(api) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000, order=[], complete=False)
    status, body = api("PUT", f"/v1/uploads/{out['upload_id']}/chunks/0", data=b"short")
    assert status == 422 and body["error"]["code"] == "chunk_size_mismatch"
    assert body["error"]["details"] == {"expected": 30_000, "received": 5}
    status, body = api("PUT", f"/v1/uploads/{out['upload_id']}/chunks/9", data=b"x")
    assert status == 404 and body["error"]["code"] == "chunk_not_found"


def test_malformed_content_digest_is_400(api) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000, order=[], complete=False)
    status, body = api("PUT", f"/v1/uploads/{out['upload_id']}/chunks/0", data=DATA[:30_000],
                       headers={"Content-Digest": "sha-256=nope"})  # fmt: skip
    assert status == 400 and body["error"]["code"] == "invalid_digest"


def test_complete_with_missing_chunks_is_409_with_the_indexes(api) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000, order=[0, 2], complete=False)
    status, body = api("POST", f"/v1/uploads/{out['upload_id']}/complete")
    assert status == 409 and body["error"]["code"] == "incomplete_upload"
    assert body["error"]["details"]["missing"] == [1, 3]


def test_complete_is_idempotent(api, stub_broker) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000)
    assert out["status"] == "queued" and out["job_id"].startswith("job_")
    status, again = api("POST", f"/v1/uploads/{out['upload_id']}/complete")
    assert status == 202 and again["job_id"] == out["job_id"]
    # one pipeline was published: the second call found the job already enqueued
    assert stub_broker.queues["chute.assemble"].qsize() == 1
    status, body = api("PUT", f"/v1/uploads/{out['upload_id']}/chunks/0", data=DATA[:30_000])
    assert status == 409 and body["error"]["code"] == "upload_complete"


def test_another_tenants_upload_is_404(api, other_tenant: TenantKeys) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000, order=[], complete=False)
    for method, path in (("GET", ""), ("POST", "/complete"), ("DELETE", ""), ("GET", "/status")):
        status, body = api(method, f"/v1/uploads/{out['upload_id']}{path}", key=other_tenant)
        assert status == 404, (method, path)
        assert body["error"]["code"] == "upload_not_found"
    status, _ = api("PUT", f"/v1/uploads/{out['upload_id']}/chunks/0", data=DATA[:30_000], key=other_tenant)
    assert status == 404


def test_cancel_removes_staged_chunks(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, DATA, filename="a.bin", chunk_size=30_000, order=[0, 1], complete=False)
    status, body = api("DELETE", f"/v1/uploads/{out['upload_id']}")
    assert status == 202 and body["status"] == "cancelled"
    assert staged_files(settings, out["upload_id"]) == []
    status, body = api("PUT", f"/v1/uploads/{out['upload_id']}/chunks/2", data=DATA[60_000:90_000])
    assert status == 409 and body["error"]["code"] == "upload_cancelled"


def test_bad_create_requests(api) -> None:  # type: ignore[no-untyped-def]
    cases = [
        ({"size": 1}, 422, "missing_field"),
        ({"filename": "a", "size": "1"}, 422, "invalid_field"),
        ({"filename": "a", "size": -1}, 422, "invalid_field"),
        ({"filename": "a", "size": 10, "chunk_size": 1}, 422, "invalid_chunk_size"),
        ({"filename": "a", "size": 10, "sha256": "abc"}, 422, "invalid_sha256"),
        ({"filename": "a", "size": 10**13}, 413, "file_too_large"),
        ({"filename": "a", "size": 10, "webhook_url": "http://10.0.0.1/hook"}, 422, "webhook_url_refused"),
        ({"filename": "a", "size": 10, "metadata": [1]}, 422, "invalid_field"),
    ]
    for body, status, code in cases:
        got_status, got = api("POST", "/v1/uploads", json=body)
        assert (got_status, got["error"]["code"]) == (status, code), body


def test_not_json_and_bad_json(client, tenant: TenantKeys) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/uploads", data="{", headers={**tenant.headers, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
    response = client.post("/v1/uploads", data="x", headers={**tenant.headers, "Content-Type": "text/plain"})
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_media_type"


def test_auth_is_required(client, tenant: TenantKeys) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/v1/jobs")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "missing_api_key"
    response = client.get("/v1/jobs", headers={"Authorization": "Bearer chute_nope"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


def test_zero_byte_upload_completes_without_chunks(api) -> None:  # type: ignore[no-untyped-def]
    status, body = api("POST", "/v1/uploads", json={"filename": "empty.txt", "size": 0})
    assert status == 201 and body["chunk_count"] == 0
    status, body = api("POST", f"/v1/uploads/{body['upload_id']}/complete")
    assert status == 202


def test_chunk_layout_helpers() -> None:
    assert [len(c) for c in chunks_of(b"x" * 70, 30)] == [30, 30, 10]


def test_a_database_outage_is_503_not_500(settings: Settings, stub_broker) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from web import create_app

    down = dataclasses.replace(settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = create_app(down).test_client()
    response = client.get("/v1/jobs", headers={"Authorization": "Bearer chute_whatever"})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"


def test_an_expired_upload_is_410_gone(api) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from models import upload as uploads
    from models.db import session_scope, utcnow

    status, body = api("POST", "/v1/uploads", json={"filename": "old.bin", "size": 32, "chunk_size": 16})
    with session_scope() as session:
        row = session.get(uploads.Upload, body["upload_id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    status, error = api("PUT", f"/v1/uploads/{body['upload_id']}/chunks/0", data=b"x" * 16)
    assert status == 410 and error["error"]["code"] == "upload_expired"
    status, error = api("POST", f"/v1/uploads/{body['upload_id']}/complete")
    assert status == 410 and error["error"]["code"] == "upload_expired"
