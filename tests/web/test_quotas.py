"""Per-tenant quotas (open uploads, staged bytes, jobs in flight, largest file) with their codes,
and GET /v1/usage showing where the tenant stands."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from models.db import session_scope
from models.settings import Settings
from models.tenant import Tenant
from tests.conftest import TenantKeys


def set_quotas(tenant: TenantKeys, **values: Any) -> None:
    with session_scope() as session:
        row = session.get(Tenant, tenant.tenant_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)


def staged_files(settings: Settings) -> list[Path]:
    """Every file on the staging disk (a refused request must leave none)."""
    return [path for path in Path(settings.staging_dir).rglob("*") if path.is_file()]


def open_upload(api, size: int, key: TenantKeys | None = None) -> tuple[int, Any]:  # type: ignore[no-untyped-def]
    return api("POST", "/v1/uploads", json={"filename": "f.bin", "size": size}, key=key)  # type: ignore[no-any-return]


def test_open_uploads_quota(api, tenant, other_tenant) -> None:  # type: ignore[no-untyped-def]
    set_quotas(tenant, max_open_uploads=2)
    first = open_upload(api, 10)[1]
    assert open_upload(api, 10)[0] == 201
    status, body = open_upload(api, 10)
    assert status == 429 and body["error"]["code"] == "open_uploads_quota_exceeded"
    assert body["error"]["details"] == {"quota": "open_uploads", "limit": 2, "used": 2}
    assert open_upload(api, 10, key=other_tenant)[0] == 201  # only this tenant is capped
    assert api("DELETE", f"/v1/uploads/{first['upload_id']}")[0] == 202  # a cancelled upload frees its slot
    assert open_upload(api, 10)[0] == 201


def test_staged_bytes_quota_counts_what_open_uploads_declared(api, tenant) -> None:  # type: ignore[no-untyped-def]
    set_quotas(tenant, max_staged_bytes=1000)
    assert open_upload(api, 600)[0] == 201
    status, body = open_upload(api, 600)
    assert status == 429 and body["error"]["code"] == "staged_bytes_quota_exceeded"
    assert body["error"]["details"] == {"quota": "staged_bytes", "limit": 1000, "used": 600}
    assert open_upload(api, 400)[0] == 201


def test_largest_file_is_a_413(api, client, tenant, settings) -> None:  # type: ignore[no-untyped-def]
    set_quotas(tenant, max_file_size=100)
    status, body = open_upload(api, 101)
    assert status == 413 and body["error"]["code"] == "file_too_large"
    assert body["error"]["details"]["max_upload_size"] == 100
    response = client.post("/v1/jobs", data={"file": [(io.BytesIO(b"x" * 101), "big.bin")]},
                           headers=tenant.headers, content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "file_too_large"
    assert staged_files(settings) == []


def test_jobs_in_flight_quota(api, client, tenant, settings) -> None:  # type: ignore[no-untyped-def]
    """No worker runs here, so every started job stays queued (in flight)."""
    set_quotas(tenant, max_jobs_in_flight=1)
    uploads = [open_upload(api, 0)[1]["upload_id"] for _ in range(2)]
    assert api("POST", f"/v1/uploads/{uploads[0]}/complete")[0] == 202
    status, body = api("POST", f"/v1/uploads/{uploads[1]}/complete")
    assert status == 429 and body["error"]["code"] == "jobs_in_flight_quota_exceeded"
    assert body["error"]["details"] == {"quota": "jobs_in_flight", "limit": 1, "used": 1}
    assert api("GET", f"/v1/uploads/{uploads[1]}")[1]["status"] == "receiving"  # can be completed later
    response = client.post("/v1/jobs", data={"file": [(io.BytesIO(b"x"), "a.txt")]},
                           headers=tenant.headers, content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 429
    assert staged_files(settings) == []  # its file was staged before the refusal, and removed


def test_usage_shows_limits_and_use(api, tenant, settings) -> None:  # type: ignore[no-untyped-def]
    set_quotas(tenant, max_open_uploads=5, retention_days=30)
    open_upload(api, 123)
    status, body = api("GET", "/v1/usage")
    assert status == 200
    assert body["quotas"]["open_uploads"] == {"limit": 5, "used": 1}
    assert body["quotas"]["staged_bytes"] == {"limit": settings.quota_staged_bytes, "used": 123}
    assert body["quotas"]["jobs_in_flight"] == {"limit": settings.quota_jobs_in_flight, "used": 0}
    assert body["quotas"]["max_file_size"] == {"limit": settings.max_upload_size}
    assert body["retention_days"] == 30
