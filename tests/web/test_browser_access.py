"""Browser credentials: upload tokens and their scope, CORS, and signed download URLs."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from models.settings import Settings
from models.tokens import TokenScope, UploadToken, sign_token
from tests.conftest import TenantKeys
from tests.support.files import sample_jpeg, sample_pdf

TUS = {"Tus-Resumable": "1.0.0"}


def mint(client: FlaskClient, tenant: TenantKeys, **scope: Any) -> dict[str, Any]:
    response = client.post("/v1/upload-tokens", json=scope, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tus_upload(client: FlaskClient, token: str, data: bytes, filetype: str | None = None) -> Any:
    meta = f"filename {base64.b64encode(b'f.bin').decode()}"
    if filetype:
        meta += f",filetype {base64.b64encode(filetype.encode()).decode()}"
    headers = {**bearer(token), **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta,
               "Content-Type": "application/offset+octet-stream"}  # fmt: skip
    return client.post("/v1/tus", data=data, headers=headers)


def staged_uploads(settings: Settings) -> list[str]:
    directory = Path(settings.staging_dir) / "uploads"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_token_uploads_and_reads_only_its_own_jobs(client: FlaskClient, tenant: TenantKeys, drain) -> None:  # type: ignore[no-untyped-def]
    minted = mint(client, tenant, max_file_size=1_000_000, metadata={"user": "u1"})
    assert minted["token"].startswith("chute_ut.") and minted["expires_at"].endswith("Z")
    token = minted["token"]
    created = tus_upload(client, token, b"hello browser")
    assert created.status_code == 201
    job_id = created.headers["Chute-Job-Id"]
    drain()
    job = client.get(f"/v1/jobs/{job_id}", headers=bearer(token)).get_json()
    assert job["status"] == "completed" and job["metadata"] == {"user": "u1"}
    assert client.get(f"/v1/jobs/{job_id}/result", headers=bearer(token)).status_code == 200

    other = mint(client, tenant)["token"]
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(other)).status_code == 404
    upload_id = created.headers["Location"].rsplit("/", 1)[1]
    assert client.head(f"/v1/tus/{upload_id}", headers={**bearer(other), **TUS}).status_code == 404
    # The API key still sees everything of its tenant.
    assert client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).status_code == 200


def test_token_may_not_list_mint_rotate_or_replay(client: FlaskClient, tenant: TenantKeys) -> None:
    token = mint(client, tenant)["token"]
    for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/upload-tokens"), ("POST", "/v1/webhook-secret/rotate"),
                         ("GET", "/v1/cors-origins"), ("POST", "/v1/jobs")):  # fmt: skip
        response = client.open(path, method=method, headers=bearer(token), json={})
        assert response.status_code == 403, (method, path)
        assert response.get_json()["error"]["code"] == "token_scope"


def test_expired_and_forged_tokens_are_401(client: FlaskClient, tenant: TenantKeys, settings: Settings) -> None:
    expired = sign_token(settings.secret_key, UploadToken("tok_x", tenant.tenant_id, time.time() - 1, TokenScope()))
    response = client.post("/v1/uploads", json={"filename": "a", "size": 1}, headers=bearer(expired))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "token_expired"
    forged = sign_token("another key", UploadToken("tok_y", tenant.tenant_id, time.time() + 60, TokenScope()))
    response = client.post("/v1/uploads", json={"filename": "a", "size": 1}, headers=bearer(forged))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token"
    real = mint(client, tenant)["token"]
    tampered = real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB")
    assert client.post("/v1/tus", headers={**bearer(tampered), **TUS, "Upload-Length": "1"}).status_code == 401


def test_file_over_the_limit_is_refused_before_its_bytes_are_stored(client: FlaskClient, tenant: TenantKeys,
                                                                   settings: Settings) -> None:  # fmt: skip
    token = mint(client, tenant, max_file_size=1000, max_total_size=1500)["token"]
    response = tus_upload(client, token, os.urandom(1001))
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "file_too_large"
    response = client.post("/v1/uploads", json={"filename": "a", "size": 5000}, headers=bearer(token))
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "file_too_large"
    assert staged_uploads(settings) == []
    assert tus_upload(client, token, os.urandom(1000)).status_code == 201
    response = tus_upload(client, token, os.urandom(600))
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "token_size_exhausted"


def test_deferred_length_is_bounded_by_the_token(client: FlaskClient, tenant: TenantKeys) -> None:
    token = mint(client, tenant, max_file_size=1000)["token"]
    headers = {**bearer(token), **TUS}
    location = client.post("/v1/tus", headers={**headers, "Upload-Defer-Length": "1"}).headers["Location"]
    patch = {**headers, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    assert client.patch(location, data=os.urandom(1001), headers=patch).status_code == 413
    over = client.patch(location, data=b"", headers={**patch, "Upload-Length": "5000"})
    assert over.status_code == 413 and over.get_json()["error"]["code"] == "file_too_large"


def test_file_count_limit(client: FlaskClient, tenant: TenantKeys) -> None:
    token = mint(client, tenant, max_files=1)["token"]
    assert client.post("/v1/uploads", json={"filename": "a", "size": 10}, headers=bearer(token)).status_code == 201
    response = client.post("/v1/uploads", json={"filename": "b", "size": 10}, headers=bearer(token))
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "token_files_exhausted"


def test_forbidden_types_declared_and_detected(client: FlaskClient, tenant: TenantKeys, drain) -> None:  # type: ignore[no-untyped-def]
    token = mint(client, tenant, allowed_types=["image/*"])["token"]
    declared = tus_upload(client, token, sample_pdf(), filetype="application/pdf")
    assert declared.status_code == 415 and declared.get_json()["error"]["code"] == "type_not_allowed"
    # Declared as an image, but the bytes are a PDF: the job fails with the same code.
    disguised = tus_upload(client, token, sample_pdf(), filetype="image/jpeg")
    assert disguised.status_code == 201
    image = tus_upload(client, token, sample_jpeg(), filetype="image/jpeg")
    drain()
    job = client.get(f"/v1/jobs/{disguised.headers['Chute-Job-Id']}", headers=bearer(token)).get_json()
    assert job["status"] == "failed" and job["error"]["code"] == "type_not_allowed"
    job = client.get(f"/v1/jobs/{image.headers['Chute-Job-Id']}", headers=bearer(token)).get_json()
    assert job["status"] == "completed"


def test_fixed_webhook_url_cannot_be_changed(client: FlaskClient, tenant: TenantKeys) -> None:
    token = mint(client, tenant, webhook_url="http://127.0.0.1:9/hook")["token"]
    response = client.post("/v1/uploads", json={"filename": "a", "size": 1, "webhook_url": "http://127.0.0.1:9/x"},
                           headers=bearer(token))  # fmt: skip
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "token_fixed_field"


def test_token_ttl_is_bounded(client: FlaskClient, tenant: TenantKeys, settings: Settings) -> None:
    response = client.post("/v1/upload-tokens", json={"expires_in": settings.max_upload_token_ttl_seconds + 1},
                           headers=tenant.headers)  # fmt: skip
    assert response.status_code == 422


def test_signed_urls_work_without_a_header(client: FlaskClient, tenant: TenantKeys, api, drain) -> None:  # type: ignore[no-untyped-def]
    data = sample_jpeg()
    created = tus_upload(client, mint(client, tenant)["token"], data, filetype="image/jpeg")
    job_id = created.headers["Chute-Job-Id"]
    drain()
    status, result = api("GET", f"/v1/jobs/{job_id}/result")
    assert status == 200
    original = client.get(result["object"]["url"])
    assert original.status_code == 200 and original.data == data
    thumb = next(d for d in result["derivatives"] if d["name"] == "thumb_256")
    assert client.get(thumb["url"]).status_code == 200
    assert client.get(f"/v1/jobs/{job_id}/download").status_code == 401
    # A signature is for one object: it does not open another.
    signature = result["object"]["url"].split("signature=", 1)[1]
    assert client.get(f"/v1/jobs/{job_id}/derivatives/thumb_256?signature={signature}").status_code == 401
    assert client.get(f"/v1/jobs/{job_id}/download?signature=x{signature}").status_code == 401


def test_cors_preflight_and_answers(client: FlaskClient, tenant: TenantKeys, other_tenant: TenantKeys) -> None:
    origin = "https://app.example.com"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "PATCH",
                 "Access-Control-Request-Headers": "authorization, tus-resumable, upload-offset"}  # fmt: skip
    refused = client.options("/v1/tus/upl_x", headers=preflight)
    assert refused.status_code == 204 and "Access-Control-Allow-Origin" not in refused.headers
    response = client.put("/v1/cors-origins", json={"origins": ["https://App.example.com/"]}, headers=tenant.headers)
    assert response.get_json() == {"origins": [origin]}
    answered = client.options("/v1/tus/upl_x", headers=preflight)  # no credential
    assert answered.status_code == 204 and answered.headers["Access-Control-Allow-Origin"] == origin
    assert "PATCH" in answered.headers["Access-Control-Allow-Methods"]
    assert "Upload-Offset" in answered.headers["Access-Control-Allow-Headers"]
    minted = client.post("/v1/upload-tokens", json={}, headers={**tenant.headers, "Origin": origin})
    assert minted.headers["Access-Control-Allow-Origin"] == origin
    exposed = minted.headers["Access-Control-Expose-Headers"]
    assert all(h in exposed for h in ("Location", "Upload-Offset", "Chute-Job-Id", "Tus-Resumable"))
    # Another tenant's credential does not open its answers to this tenant's origin.
    theirs = client.get("/v1/jobs", headers={**other_tenant.headers, "Origin": origin})
    assert theirs.status_code == 200 and "Access-Control-Allow-Origin" not in theirs.headers
    bad = client.put("/v1/cors-origins", json={"origins": ["app.example.com/path"]}, headers=tenant.headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "invalid_origin"
