"""Retention, as the sweeper and ``chute cleanup`` enforce it: a tenant's ended jobs past its
retention lose their object, derivatives and rows; other tenants (default: for ever) keep theirs;
dead uploads' rows go after the grace period."""

from __future__ import annotations

import dataclasses
import io
from datetime import timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy import func, select

from actors.cleanup import sweep
from models import delivery
from models import job as jobs
from models import upload as uploads
from models.db import session_scope, utcnow
from models.settings import configure
from models.tenant import Tenant
from tests.conftest import TenantKeys


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def finished_job(client, drain, tenant: TenantKeys, webhook_url: str | None = None) -> str:  # type: ignore[no-untyped-def]
    data = {"file": [(io.BytesIO(png()), "red.png")]}
    if webhook_url:
        data["webhook_url"] = webhook_url  # type: ignore[assignment]
    response = client.post("/v1/jobs", data=data, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 202
    drain()
    job_id = str(response.get_json()["jobs"][0]["job_id"])
    assert client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).get_json()["status"] == "completed"
    return job_id


def age(job_id: str, days: float) -> None:
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None
        job.completed_at = utcnow() - timedelta(days=days)


def stored_files(settings) -> set[str]:  # type: ignore[no-untyped-def]
    root = Path(settings.storage_url.removeprefix("file://"))
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".multipart" not in p.parts}


def test_jobs_past_retention_lose_objects_derivatives_and_rows(  # type: ignore[no-untyped-def]
    client, drain, settings, tenant, other_tenant, webhook_receiver
) -> None:
    with session_scope() as session:
        row = session.get(Tenant, tenant.tenant_id)
        assert row is not None
        row.retention_days = 7
    old = finished_job(client, drain, tenant, webhook_receiver.url())
    recent = finished_job(client, drain, tenant)
    others = finished_job(client, drain, other_tenant)
    age(old, 8)
    age(recent, 6)
    age(others, 400)  # the other tenant keeps everything (the default retention is for ever)
    before = stored_files(settings)
    assert any(old in f for f in before) and sum(old in f for f in before) >= 2  # the object and derivatives
    assert sweep()["expired_uploads"] == 0
    after = stored_files(settings)
    assert not any(old in f for f in after)
    assert any(recent in f for f in after) and any(others in f for f in after)
    assert client.get(f"/v1/jobs/{old}", headers=tenant.headers).status_code == 404
    assert client.get(f"/v1/jobs/{recent}", headers=tenant.headers).status_code == 200
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(delivery.WebhookEvent.job_id == old)) == 0
        assert session.scalar(select(func.count()).where(uploads.Upload.job_id == old)) == 0


def test_a_default_retention_applies_to_tenants_without_their_own(client, drain, settings, tenant) -> None:  # type: ignore[no-untyped-def]
    configure(dataclasses.replace(settings, retention_days=1))
    job_id = finished_job(client, drain, tenant)
    age(job_id, 2)
    sweep()
    assert client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).status_code == 404


def test_dead_uploads_rows_go_after_the_grace_period(client, settings, tenant) -> None:  # type: ignore[no-untyped-def]
    configure(dataclasses.replace(settings, expired_upload_grace_seconds=3600))
    ids = []
    for _ in range(3):
        created = client.post("/v1/uploads", json={"filename": "a.bin", "size": 10}, headers=tenant.headers)
        ids.append(created.get_json()["upload_id"])
    with session_scope() as session:
        for upload_id, ended_ago in zip(ids, (timedelta(hours=2), timedelta(minutes=10), timedelta(hours=2)),
                                        strict=True):  # fmt: skip
            upload = session.get(uploads.Upload, upload_id)
            assert upload is not None
            upload.expires_at = utcnow() - ended_ago
    client.delete(f"/v1/uploads/{ids[2]}", headers=tenant.headers)  # cancelled, long expired
    assert sweep()["expired_uploads"] == 2  # the first two expire now...
    codes = [client.get(f"/v1/uploads/{u}", headers=tenant.headers).status_code for u in ids]
    assert codes == [404, 200, 404]  # ...and the rows ended more than an hour ago are gone
