"""tus 1.0.0 at /v1/tus, through Flask's test client on the StubBroker (the stock tus clients
run against a real chute web in tests/e2e/test_tus_clients.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import update

from models import upload as uploads
from models.db import session_scope, utcnow
from models.settings import Settings
from tests.conftest import TenantKeys

DATA = os.urandom(300_000)
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def tus_headers(tenant: TenantKeys, **extra: str) -> dict[str, str]:
    return {**tenant.headers, **TUS, **{k.replace("_", "-"): v for k, v in extra.items()}}


def create(client: FlaskClient, tenant: TenantKeys, length: int | None, **extra: str) -> Any:
    headers = tus_headers(tenant, **extra)
    if length is not None:
        headers["Upload-Length"] = str(length)
    headers.setdefault("Upload-Metadata", f"filename {b64('data.bin')},filetype {b64('application/octet-stream')}")
    return client.post("/v1/tus", headers=headers)


def patch(client: FlaskClient, tenant: TenantKeys, location: str, offset: int, body: bytes, **extra: str) -> Any:
    headers = {**tus_headers(tenant, **extra), **OCTETS, "Upload-Offset": str(offset)}
    return client.patch(location, data=body, headers=headers)


def head(client: FlaskClient, tenant: TenantKeys, location: str) -> Any:
    return client.head(location, headers=tus_headers(tenant))


def staged(settings: Settings, upload_id: str) -> list[Path]:
    directory = Path(settings.staging_dir) / "uploads" / upload_id
    return sorted(p for p in directory.iterdir() if not p.name.startswith(".")) if directory.exists() else []


def test_options_announce_version_extensions_and_limits(client: FlaskClient) -> None:
    response = client.options("/v1/tus")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0" and response.headers["Tus-Resumable"] == "1.0.0"
    extensions = set(response.headers["Tus-Extension"].split(","))
    assert extensions == {"creation", "creation-with-upload", "creation-defer-length", "expiration", "checksum",
                          "termination", "concatenation"}  # fmt: skip
    assert set(response.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256"}
    assert int(response.headers["Tus-Max-Size"]) > 0


def test_version_is_required(client: FlaskClient, tenant: TenantKeys) -> None:
    response = client.post("/v1/tus", headers={**tenant.headers, "Upload-Length": "10"})
    assert response.status_code == 412 and response.headers["Tus-Version"] == "1.0.0"
    response = client.post("/v1/tus", headers={**TUS, "Upload-Length": "10"})
    assert response.status_code == 401


def test_upload_in_pieces_starts_the_job_once(client: FlaskClient, tenant: TenantKeys, api, drain) -> None:  # type: ignore[no-untyped-def]
    created = create(client, tenant, len(DATA))
    assert created.status_code == 201 and created.headers["Upload-Offset"] == "0"
    assert created.headers["Upload-Expires"].endswith("GMT")
    location = created.headers["Location"]
    assert "/v1/tus/upl_" in location
    first = patch(client, tenant, location, 0, DATA[:100_000])
    assert first.status_code == 204 and first.headers["Upload-Offset"] == "100000"
    assert "Chute-Job-Id" not in first.headers
    probe = head(client, tenant, location)
    assert probe.status_code == 200 and probe.headers["Upload-Offset"] == "100000"
    assert probe.headers["Upload-Length"] == str(len(DATA)) and probe.headers["Cache-Control"] == "no-store"
    assert patch(client, tenant, location, 0, DATA[:10]).status_code == 409  # not where the bytes end
    last = patch(client, tenant, location, 100_000, DATA[100_000:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(DATA))
    job_id = last.headers["Chute-Job-Id"]
    assert last.headers["Chute-Job-Url"].endswith(f"/v1/jobs/{job_id}")
    assert head(client, tenant, location).headers["Chute-Job-Id"] == job_id  # once, and told again
    drain()
    status, job = api("GET", f"/v1/jobs/{job_id}")
    assert status == 200 and job["status"] == "completed", job
    assert job["filename"] == "data.bin" and job["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert client.get(f"/v1/jobs/{job_id}/download", headers=tenant.headers).data == DATA


def test_protocol_errors(client: FlaskClient, tenant: TenantKeys) -> None:
    location = create(client, tenant, 10).headers["Location"]
    wrong_type = client.patch(location, data=b"x", headers={**tus_headers(tenant), "Upload-Offset": "0"})
    assert wrong_type.status_code == 415
    assert patch(client, tenant, location, 0, b"x" * 11).status_code == 413
    assert client.post("/v1/tus", headers=tus_headers(tenant)).status_code == 400  # no length
    assert create(client, tenant, 10, Upload_Metadata="filename !!!").status_code == 400
    assert head(client, tenant, "/v1/tus/upl_nothere").status_code == 404
    assert create(client, tenant, 10**15).status_code == 413


def test_checksum_mismatch_is_460_and_nothing_is_kept(client: FlaskClient, tenant: TenantKeys,
                                                     settings: Settings) -> None:  # fmt: skip
    location = create(client, tenant, len(DATA)).headers["Location"]
    piece = DATA[:50_000]
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    response = patch(client, tenant, location, 0, piece, Upload_Checksum=f"sha1 {wrong}")
    assert response.status_code == 460 and response.get_json()["error"]["code"] == "checksum_mismatch"
    assert head(client, tenant, location).headers["Upload-Offset"] == "0"
    assert staged(settings, location.rsplit("/", 1)[1]) == []
    for algorithm in ("sha1", "sha256"):
        digest = base64.b64encode(hashlib.new(algorithm, piece).digest()).decode()
        offset = 0 if algorithm == "sha1" else 50_000
        good = patch(client, tenant, location, offset, piece, Upload_Checksum=f"{algorithm} {digest}")
        assert good.status_code == 204
    assert head(client, tenant, location).headers["Upload-Offset"] == "100000"
    bad = patch(client, tenant, location, 100_000, piece, Upload_Checksum="md5 AAAA")
    assert bad.status_code == 400


def test_interrupted_patch_keeps_what_reached_the_disk(client: FlaskClient, tenant: TenantKeys, api, drain) -> None:  # type: ignore[no-untyped-def]
    location = create(client, tenant, len(DATA)).headers["Location"]
    # The client promises 200,000 bytes and the connection ends after 120,000.
    headers = {**tus_headers(tenant), **OCTETS, "Upload-Offset": "0", "Content-Length": "200000"}
    client.patch(location, input_stream=io.BytesIO(DATA[:120_000]), headers=headers)
    probe = head(client, tenant, location)
    assert probe.headers["Upload-Offset"] == "120000"
    last = patch(client, tenant, location, 120_000, DATA[120_000:])
    assert last.status_code == 204
    drain()
    status, job = api("GET", f"/v1/jobs/{last.headers['Chute-Job-Id']}")
    assert job["status"] == "completed" and job["sha256"] == hashlib.sha256(DATA).hexdigest()


def test_creation_with_upload_and_deferred_length(client: FlaskClient, tenant: TenantKeys, api, drain) -> None:  # type: ignore[no-untyped-def]
    headers = {**tus_headers(tenant), **OCTETS, "Upload-Length": str(len(DATA)),
               "Upload-Metadata": f"filename {b64('all.bin')}"}  # fmt: skip
    whole = client.post("/v1/tus", data=DATA, headers=headers)
    assert whole.status_code == 201 and whole.headers["Upload-Offset"] == str(len(DATA))
    assert whole.headers["Chute-Job-Id"].startswith("job_")

    deferred = create(client, tenant, None, Upload_Defer_Length="1")
    assert deferred.status_code == 201
    location = deferred.headers["Location"]
    assert head(client, tenant, location).headers["Upload-Defer-Length"] == "1"
    assert patch(client, tenant, location, 0, DATA[:1000]).status_code == 204
    last = patch(client, tenant, location, 1000, DATA[1000:2000], Upload_Length="2000")
    assert last.status_code == 204 and last.headers["Chute-Job-Id"]
    assert head(client, tenant, location).headers["Upload-Length"] == "2000"
    drain()
    for job_id, size in ((whole.headers["Chute-Job-Id"], len(DATA)), (last.headers["Chute-Job-Id"], 2000)):
        status, job = api("GET", f"/v1/jobs/{job_id}")
        assert job["status"] == "completed" and job["size"] == size


def test_zero_byte_upload_starts_its_job_at_creation(client: FlaskClient, tenant: TenantKeys, api, drain) -> None:  # type: ignore[no-untyped-def]
    created = create(client, tenant, 0)
    assert created.status_code == 201 and created.headers["Chute-Job-Id"]
    drain()
    assert api("GET", f"/v1/jobs/{created.headers['Chute-Job-Id']}")[1]["status"] == "completed"


def test_concatenation_of_partial_uploads(client: FlaskClient, tenant: TenantKeys, api, drain) -> None:  # type: ignore[no-untyped-def]
    halves = [DATA[:170_000], DATA[170_000:]]
    locations = []
    for half in halves:
        partial = create(client, tenant, len(half), Upload_Concat="partial")
        assert partial.status_code == 201
        locations.append(partial.headers["Location"])
        assert head(client, tenant, partial.headers["Location"]).headers["Upload-Concat"] == "partial"
    assert patch(client, tenant, locations[1], 0, halves[1]).status_code == 204  # in any order
    assert "Chute-Job-Id" not in patch(client, tenant, locations[0], 0, halves[0]).headers
    final = create(client, tenant, None, Upload_Concat="final;" + " ".join(locations))
    assert final.status_code == 201, final.get_json()
    job_id = final.headers["Chute-Job-Id"]
    probe = head(client, tenant, final.headers["Location"])
    assert probe.headers["Upload-Offset"] == probe.headers["Upload-Length"] == str(len(DATA))
    assert probe.headers["Upload-Concat"].startswith("final;")
    assert patch(client, tenant, final.headers["Location"], len(DATA), b"x").status_code == 403
    drain()
    status, job = api("GET", f"/v1/jobs/{job_id}")
    assert job["status"] == "completed" and job["sha256"] == hashlib.sha256(DATA).hexdigest()


def test_final_upload_needs_finished_partials(client: FlaskClient, tenant: TenantKeys) -> None:
    partial = create(client, tenant, 10, Upload_Concat="partial").headers["Location"]
    unfinished = create(client, tenant, None, Upload_Concat=f"final;{partial}")
    assert unfinished.status_code == 400 and unfinished.get_json()["error"]["code"] == "partial_unfinished"
    whole = create(client, tenant, 10).headers["Location"]
    not_partial = create(client, tenant, None, Upload_Concat=f"final;{whole}")
    assert not_partial.status_code == 400 and not_partial.get_json()["error"]["code"] == "invalid_concat"


def test_termination_and_expiration(client: FlaskClient, tenant: TenantKeys, settings: Settings) -> None:
    location = create(client, tenant, len(DATA)).headers["Location"]
    assert patch(client, tenant, location, 0, DATA[:1000]).status_code == 204
    assert client.delete(location, headers=tus_headers(tenant)).status_code == 204
    assert head(client, tenant, location).status_code == 404
    assert staged(settings, location.rsplit("/", 1)[1]) == []

    location = create(client, tenant, len(DATA)).headers["Location"]
    with session_scope() as session:
        session.execute(update(uploads.Upload).where(uploads.Upload.id == location.rsplit("/", 1)[1])
                        .values(expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
    assert head(client, tenant, location).status_code == 410
    assert patch(client, tenant, location, 0, DATA[:10]).status_code == 410


def test_chunk_api_and_tus_do_not_mix(client: FlaskClient, tenant: TenantKeys, api) -> None:  # type: ignore[no-untyped-def]
    upload_id = create(client, tenant, 100).headers["Location"].rsplit("/", 1)[1]
    status, body = api("PUT", f"/v1/uploads/{upload_id}/chunks/0", data=b"x" * 100)
    assert status == 409 and body["error"]["code"] == "upload_is_tus"
    assert api("POST", f"/v1/uploads/{upload_id}/complete")[1]["error"]["code"] == "upload_is_tus"
    chunked = api("POST", "/v1/uploads", json={"filename": "a.bin", "size": 10})[1]["upload_id"]
    assert head(client, tenant, f"/v1/tus/{chunked}").status_code == 404


def test_another_tenants_upload_is_404(client: FlaskClient, tenant: TenantKeys, other_tenant: TenantKeys) -> None:
    location = create(client, tenant, 10).headers["Location"]
    assert head(client, other_tenant, location).status_code == 404
    assert patch(client, other_tenant, location, 0, b"x").status_code == 404
