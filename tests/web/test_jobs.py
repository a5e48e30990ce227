"""Jobs through the whole pipeline on the StubBroker: one-shot and chunked uploads, results,
downloads, listing, cancel, webhooks, and the failures a client can cause."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import dramatiq
from PIL import Image
from standardwebhooks import Webhook

from tests.conftest import TenantKeys
from tests.support.files import corrupt_pdf, sample_jpeg, sample_pdf
from tests.support.uploading import chunked_upload
from tests.support.webhook_receiver import Reply, WebhookReceiver


def one_shot(client, tenant: TenantKeys, files: list[tuple[str, bytes]], **form: str):  # type: ignore[no-untyped-def]
    data = {"file": [(io.BytesIO(content), name) for name, content in files], **form}
    return client.post("/v1/jobs", data=data, headers=tenant.headers, content_type="multipart/form-data")


def test_batch_upload_runs_every_file_through_the_pipeline(client, tenant, drain, api) -> None:  # type: ignore[no-untyped-def]
    jpeg, text = sample_jpeg(), b"plain text\n" * 1000
    response = one_shot(client, tenant, [("photo.jpg", jpeg), ("notes.txt", text)])
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["total"] == 2 and [j["filename"] for j in body["jobs"]] == ["photo.jpg", "notes.txt"]
    drain()
    photo_id, notes_id = (j["job_id"] for j in body["jobs"])

    status, job = api("GET", f"/v1/jobs/{photo_id}")
    assert status == 200 and job["status"] == "completed" and job["progress"] == 1.0
    assert job["sha256"] == hashlib.sha256(jpeg).hexdigest() and job["kind"] == "image"
    status, result = api("GET", f"/v1/jobs/{photo_id}/result")
    assert status == 200
    assert result["image"]["format"] == "JPEG" and (result["image"]["width"], result["image"]["height"]) == (640, 480)
    thumbs = {d["name"]: d for d in result["derivatives"]}
    assert max(thumbs["thumb_256"]["width"], thumbs["thumb_256"]["height"]) == 256
    thumb = client.get(thumbs["thumb_256"]["url"], headers=tenant.headers)
    assert thumb.status_code == 200
    assert max(Image.open(io.BytesIO(thumb.data)).size) == 256

    status, result = api("GET", f"/v1/jobs/{notes_id}/result")
    assert result["kind"] == "other" and result["mime"] == "text/plain" and result["derivatives"] == []
    download = client.get(f"/v1/jobs/{notes_id}/download", headers=tenant.headers)
    assert download.status_code == 200 and download.data == text


def test_chunked_pdf_out_of_order_gives_text_per_page(api, drain) -> None:  # type: ignore[no-untyped-def]
    pdf = sample_pdf()
    size = 700
    count = -(-len(pdf) // size)
    out = chunked_upload(api, pdf, filename="doc.pdf", chunk_size=size, order=reversed(range(count)))
    drain()
    status, job = api("GET", f"/v1/jobs/{out['job_id']}")
    assert job["status"] == "completed", job
    status, result = api("GET", f"/v1/jobs/{out['job_id']}/result")
    document = result["document"]
    assert document["page_count"] == 5 and document["metadata"]["title"] == "chute sample"
    assert [p["number"] for p in document["pages"]] == [1, 2, 3, 4, 5]
    assert "marker-3-" in document["pages"][2]["text"]
    assert result["object"]["sha256"] == hashlib.sha256(pdf).hexdigest() and result["object"]["size"] == len(pdf)
    assert "text" in {d["name"] for d in result["derivatives"]}


def test_the_text_derivative_names_its_charset_once(client, tenant, api, drain) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, sample_pdf(), filename="doc.pdf", chunk_size=4096)
    drain()
    response = client.get(f"/v1/jobs/{out['job_id']}/derivatives/text", headers=tenant.headers)
    assert response.status_code == 200 and b"marker-2-" in response.data
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_corrupt_pdf_fails_with_a_specific_code_and_a_signed_webhook(client, tenant, drain, api) -> None:  # type: ignore[no-untyped-def]
    with WebhookReceiver(secret=tenant.webhook_secret) as receiver:
        response = one_shot(client, tenant, [("broken.pdf", corrupt_pdf())], webhook_url=receiver.url())
        job_id = response.get_json()["jobs"][0]["job_id"]
        drain()
        (request,) = receiver.wait_for(1)
    status, job = api("GET", f"/v1/jobs/{job_id}")
    assert job["status"] == "failed" and job["error"]["code"] == "corrupt_file"
    assert request.verified, request.verify_error
    event = Webhook(tenant.webhook_secret).verify(request.body, request.headers)
    assert event["type"] == "job.failed" and event["data"]["error"]["code"] == "corrupt_file"
    assert api("GET", f"/v1/jobs/{job_id}/result")[1]["error"]["code"] == "not_ready"


def test_webhook_retries_then_delivers_and_every_attempt_is_recorded(client, tenant, drain, api) -> None:  # type: ignore[no-untyped-def]
    with WebhookReceiver(secret=tenant.webhook_secret) as receiver:
        receiver.script(Reply.error(500), Reply.ok())
        response = one_shot(client, tenant, [("a.txt", b"hello")], webhook_url=receiver.url())
        job_id = response.get_json()["jobs"][0]["job_id"]
        drain()
        first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body and second.verified
    status, job = api("GET", f"/v1/jobs/{job_id}")
    assert job["webhook"] == {"status": "delivered", "attempts": 2}
    status, body = api("GET", f"/v1/jobs/{job_id}/deliveries")
    assert [d["status_code"] for d in body["deliveries"]] == [500, 200]
    assert json.loads(second.body)["data"]["job_id"] == job_id


def test_cancel_a_queued_job_and_then_it_is_409(api, stub_broker, settings) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, b"x" * 100, filename="a.txt", chunk_size=50)
    status, body = api("DELETE", f"/v1/jobs/{out['job_id']}")
    assert status == 202 and body["status"] == "cancelled"
    assert not (Path(settings.staging_dir) / "uploads" / out["upload_id"]).exists()
    worker = dramatiq.Worker(stub_broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        stub_broker.join("chute.assemble", timeout=10_000, fail_fast=False)  # skipped: the job is over
        stub_broker.join("chute.notify", timeout=10_000, fail_fast=False)
    finally:
        worker.stop()
        stub_broker.middleware[:] = [m for m in stub_broker.middleware if type(m).__name__ != "_WorkerMiddleware"]
    status, job = api("GET", f"/v1/jobs/{out['job_id']}")
    assert job["status"] == "cancelled" and job["progress"] == 0.0
    status, body = api("DELETE", f"/v1/jobs/{out['job_id']}")
    assert status == 409 and body["error"]["code"] == "job_finished"


def test_list_jobs_newest_first_with_cursor_and_filter(client, tenant, api, stub_broker) -> None:  # type: ignore[no-untyped-def]
    ids = [one_shot(client, tenant, [(f"{n}.txt", b"n")]).get_json()["jobs"][0]["job_id"] for n in range(5)]
    status, page = api("GET", "/v1/jobs?limit=2")
    assert [j["job_id"] for j in page["jobs"]] == ids[::-1][:2] and page["next_cursor"]
    seen = [j["job_id"] for j in page["jobs"]]
    while page["next_cursor"]:
        status, page = api("GET", f"/v1/jobs?limit=2&cursor={page['next_cursor']}")
        seen += [j["job_id"] for j in page["jobs"]]
    assert seen == ids[::-1]
    api("DELETE", f"/v1/jobs/{ids[0]}")
    status, page = api("GET", "/v1/jobs?status=cancelled")
    assert [j["job_id"] for j in page["jobs"]] == [ids[0]]
    assert api("GET", "/v1/jobs?limit=0")[0] == 400
    assert api("GET", "/v1/jobs?cursor=!!")[1]["error"]["code"] == "invalid_cursor"
    assert api("GET", "/v1/jobs?status=bogus")[0] == 400


def test_another_tenants_job_is_404(client, tenant, other_tenant, api) -> None:  # type: ignore[no-untyped-def]
    job_id = one_shot(client, tenant, [("a.txt", b"a")]).get_json()["jobs"][0]["job_id"]
    for method, suffix in (("GET", ""), ("GET", "/result"), ("DELETE", ""), ("GET", "/download"),
                           ("GET", "/deliveries")):  # fmt: skip
        status, body = api(method, f"/v1/jobs/{job_id}{suffix}", key=other_tenant)
        assert status == 404 and body["error"]["code"] == "job_not_found", suffix
    status, page = api("GET", "/v1/jobs", key=other_tenant)
    assert page["jobs"] == []


def test_batch_upload_bad_requests(client, tenant) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/jobs", json={}, headers=tenant.headers)
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_media_type"
    response = client.post("/v1/jobs", data={"other": "x"}, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "missing_file"
    response = one_shot(client, tenant, [("a.txt", b"a")], webhook_url="http://169.254.169.254/latest")
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "webhook_url_refused"


def test_upload_status_follows_the_job(api, drain) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, b"y" * 64, filename="y.txt", chunk_size=32, complete=False)
    status, body = api("GET", f"/v1/uploads/{out['upload_id']}/status")
    assert status == 409 and body["error"]["code"] == "upload_not_complete"
    api("POST", f"/v1/uploads/{out['upload_id']}/complete")
    drain()
    status, body = api("GET", f"/v1/uploads/{out['upload_id']}/status")
    assert status == 200 and body["status"] == "completed"


def test_unknown_route_and_method_are_json(client, tenant) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/v1/nothing", headers=tenant.headers)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    response = client.patch("/v1/jobs", headers=tenant.headers)
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"
