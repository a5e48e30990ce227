"""The ops API behind the admin token, the scrape-time gauges, and forwarded headers from trusted proxies.

In-process (StubBroker, SQLite); tests/e2e/test_ops.py runs the same questions through RabbitMQ.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from models.settings import Settings, configure
from tests.conftest import TenantKeys
from tests.support.uploading import chunked_upload
from web import create_app

TOKEN = "ops-secret-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
#: Bytes that look like a PDF (magic number) but are not one: extract fails them ``corrupt_file``.
CORRUPT_PDF = b"%PDF-1.7\n" + b"\x00 not a pdf at all " * 40


@pytest.fixture
def admin(settings: Settings) -> Settings:
    return configure(dataclasses.replace(settings, admin_token=TOKEN))


def _send(client: FlaskClient, tenant: TenantKeys, name: str, data: bytes) -> str:
    form = {"file": [(io.BytesIO(data), name, "application/octet-stream")]}
    response = client.post("/v1/jobs", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["jobs"][0]["job_id"])


def test_the_ops_api_is_off_without_a_token_and_refuses_tenant_keys(client: FlaskClient, tenant: TenantKeys,
                                                                   settings: Settings) -> None:  # fmt: skip
    response = client.get("/v1/ops/overview", headers=ADMIN)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "ops_disabled"
    configure(dataclasses.replace(settings, admin_token=TOKEN))
    for headers in (tenant.headers, {"Authorization": "Bearer wrong"}, {}):
        response = client.get("/v1/ops/overview", headers=headers)
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_admin_token"
    # and the admin token is no tenant key
    assert client.get("/v1/jobs", headers=ADMIN).status_code == 401


def test_overview_counts_what_ran(client: FlaskClient, tenant: TenantKeys, admin: Settings, api: Any,
                                  drain: Callable[..., None]) -> None:  # fmt: skip
    done = [_send(client, tenant, f"ok{i}.txt", b"hello ops\n" * (i + 1)) for i in range(2)]
    bad = chunked_upload(api, b"x" * 100, filename="bad.bin", chunk_size=64, sha256="0" * 64)["job_id"]
    drain()

    body = client.get("/v1/ops/overview", headers=ADMIN).get_json()
    stages = {s["stage"]: s for s in body["stages"]}
    assert list(stages) == ["assemble", "upload", "extract", "notify"]
    assert stages["assemble"]["done"] == 2 and stages["notify"]["done"] == 2
    assert all(s["waiting"] == 0 and s["p50_seconds"] is not None for s in stages.values())
    assert body["failures_by_code"] == {"checksum_mismatch": 1}
    (failed,) = body["failed_jobs"]
    assert failed["job_id"] == bad and failed["retryable"] is False and failed["error"]["code"] == "checksum_mismatch"
    assert body["in_flight_jobs"] == [] and body["broker_error"] is None
    assert [api("GET", f"/v1/jobs/{j}")[1]["status"] for j in done] == ["completed", "completed"]


def test_retry_sends_a_failed_job_back_to_its_stage_and_refuses_one_whose_bytes_are_gone(
    client: FlaskClient, tenant: TenantKeys, admin: Settings, api: Any, drain: Callable[..., None]
) -> None:
    corrupt = _send(client, tenant, "broken.pdf", CORRUPT_PDF)
    gone = chunked_upload(api, b"y" * 100, filename="bad.bin", chunk_size=64, sha256="0" * 64)["job_id"]
    drain()
    _, job = api("GET", f"/v1/jobs/{corrupt}")
    assert job["status"] == "failed" and job["error"]["code"] == "corrupt_file", job
    attempts = job["attempts"]

    response = client.post(f"/v1/ops/jobs/{corrupt}/retry", headers=ADMIN)
    assert response.status_code == 202 and response.get_json()["stage"] == "extract"
    drain()
    _, again = api("GET", f"/v1/jobs/{corrupt}")
    assert again["status"] == "failed" and again["error"]["code"] == "corrupt_file"
    assert again["attempts"] == attempts + 1, "extract ran once more, from its stored file"

    response = client.post(f"/v1/ops/jobs/{gone}/retry", headers=ADMIN)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "job_not_retryable"
    response = client.post("/v1/ops/jobs/job_nope/retry", headers=ADMIN)
    assert response.status_code == 404


def test_cancel_any_tenants_job_in_flight(client: FlaskClient, tenant: TenantKeys, admin: Settings, api: Any,
                                          stub_broker: Any) -> None:  # fmt: skip
    job_id = _send(client, tenant, "wait.txt", b"queued, never run\n")
    body = client.get("/v1/ops/overview", headers=ADMIN).get_json()
    assert [j["job_id"] for j in body["in_flight_jobs"]] == [job_id]
    assert {s["stage"]: s["waiting"] for s in body["stages"]}["assemble"] == 1
    assert {s["stage"]: s["ready"] for s in body["stages"]}["assemble"] == 1  # the StubBroker's queue

    assert client.delete(f"/v1/ops/jobs/{job_id}", headers=ADMIN).status_code == 202
    assert api("GET", f"/v1/jobs/{job_id}")[1]["status"] == "cancelled"
    response = client.delete(f"/v1/ops/jobs/{job_id}", headers=ADMIN)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "job_finished"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_say_what_waits(client: FlaskClient, tenant: TenantKeys, stub_broker: Any) -> None:
    _send(client, tenant, "waiting.txt", b"12345")  # no worker runs in this test
    now = _samples(client.get("/metrics").get_data(as_text=True))
    assert now["chute_stage_waiting_jobs", (("stage", "assemble"),)] == 1
    assert now["chute_stage_waiting_jobs", (("stage", "upload"),)] == 0
    assert now["chute_stage_oldest_waiting_seconds", (("stage", "assemble"),)] >= 0
    assert now["chute_queue_messages", (("stage", "assemble"), ("state", "ready"))] == 1
    assert now["chute_queue_up", ()] == 1 and now["chute_database_up", ()] == 1


def test_metrics_say_what_happened(client: FlaskClient, tenant: TenantKeys, api: Any,
                                   drain: Callable[..., None]) -> None:  # fmt: skip
    before = _samples(client.get("/metrics").get_data(as_text=True))
    _send(client, tenant, "done.txt", b"12345")
    drain()
    after = _samples(client.get("/metrics").get_data(as_text=True))

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert after["chute_stage_waiting_jobs", (("stage", "assemble"),)] == 0
    assert delta("chute_ingested_bytes_total") == 5
    assert delta("chute_uploads_total", event="opened") == 1 and delta("chute_uploads_total", event="completed") == 1
    assert delta("chute_jobs_total", outcome="completed", code="") == 1
    for stage in ("assemble", "upload", "notify"):
        assert delta("chute_stage_queue_wait_seconds_count", stage=stage) == 1, stage
    assert delta("chute_stage_queue_wait_seconds_count", stage="extract") == 0  # a text file: passed over
    assert delta("chute_stage_seconds_count", stage="upload", outcome="ok") == 1


def test_forwarded_headers_count_only_from_trusted_proxies(settings: Settings, stub_broker: Any, tenant: TenantKeys,
                                                           drain: Callable[..., None]) -> None:  # fmt: skip
    app = create_app(dataclasses.replace(settings, trusted_proxies=("10.0.0.0/8",)))
    client = app.test_client()
    job_id = _send(client, tenant, "r.txt", b"result url\n")
    drain()
    forwarded = {**tenant.headers, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}

    trusted = client.get(f"/v1/jobs/{job_id}/result", headers=forwarded, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert trusted.get_json()["object"]["url"].startswith(f"https://api.example.com/v1/jobs/{job_id}/download?")
    spoofed = client.get(f"/v1/jobs/{job_id}/result", headers=forwarded, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert spoofed.get_json()["object"]["url"].startswith(f"http://localhost/v1/jobs/{job_id}/download?")


def test_the_page_is_served_by_chute_itself(client: FlaskClient) -> None:
    page = client.get("/ops")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'<script src="/ops/ops.js">' in page.data and b"http" not in page.data.split(b"<body>")[1]
    script = client.get("/ops/ops.js")
    assert script.status_code == 200 and b"/v1/ops/overview" in script.data


def test_the_ops_api_is_in_the_openapi_document_under_its_own_credential(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    overview = doc["paths"]["/v1/ops/overview"]["get"]
    assert overview["security"] == [{"admin": []}] and "admin" in doc["components"]["securitySchemes"]
    assert overview["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/OpsOverview")
    assert set(overview["responses"]) == {"200", "401", "404", "503"}  # 503: the database is down
    retry = doc["paths"]["/v1/ops/jobs/{job_id}/retry"]["post"]
    assert set(retry["responses"]) == {"202", "401", "404", "409", "503"}
    assert doc["paths"]["/ops"]["get"]["security"] == []
