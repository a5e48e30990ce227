"""A file from a web client to object storage, extracted, and its owner told: through RabbitMQ,
PostgreSQL, moto's S3 server and a real webhook receiver."""

from __future__ import annotations

import hashlib
import io
import json
import time
from typing import Any

import requests
from PIL import Image
from standardwebhooks import Webhook

from tests.e2e.conftest import Stack
from tests.support import services
from tests.support.files import corrupt_pdf, sample_jpeg, sample_pdf
from tests.support.uploading import chunked_upload, content_digest


def wait_for_job(stack: Stack, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = stack.call("GET", f"/v1/jobs/{job_id}")
        assert status == 200, job
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end within {timeout}s: {job}")


def webhook_for(stack: Stack, job_id: str, timeout: float = 20) -> dict[str, Any]:
    """The verified webhook event the receiver got for ``job_id``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in stack.receiver.requests:
            event = json.loads(request.body)
            if event["data"]["job_id"] == job_id:
                assert request.verified, request.verify_error
                # verify again as any consumer would, with the standardwebhooks package
                return dict(Webhook(stack.keys["webhook_secret"]).verify(request.body, request.headers))
        time.sleep(0.05)
    raise AssertionError(f"no webhook for {job_id}")


def fetch(url: str) -> bytes:
    """Follow the API's redirect to a presigned S3 URL (the API key does not travel there)."""
    response = requests.get(url, timeout=30, allow_redirects=False)
    assert response.status_code in (200, 401), response.status_code
    return response.content


def download(stack: Stack, url: str) -> bytes:
    response = requests.get(url, headers={"Authorization": f"Bearer {stack.keys['api_key']}"},
                            timeout=30, allow_redirects=False)  # fmt: skip
    assert response.status_code == 302, response.text
    assert "X-Amz-Signature" in response.headers["Location"]
    assert response.headers["Location"].startswith(stack.env["CHUTE_STORAGE_PUBLIC_URL"] + "/"), "the public endpoint"
    stored = requests.get(response.headers["Location"], timeout=30)
    assert stored.status_code == 200
    return stored.content


def test_chunked_pdf_sent_out_of_order(stack: Stack) -> None:
    pdf = sample_pdf()
    chunk_size = 512
    count = -(-len(pdf) // chunk_size)
    order = list(range(1, count, 2)) + list(range(0, count, 2))  # odd chunks first, then even
    out = chunked_upload(stack.call, pdf, filename="report.pdf", chunk_size=chunk_size, order=order,
                         webhook_url=stack.receiver.url("/pdf"))  # fmt: skip
    job = wait_for_job(stack, out["job_id"])
    assert job["status"] == "completed", job
    assert job["sha256"] == hashlib.sha256(pdf).hexdigest() and job["kind"] == "pdf"
    status, result = stack.call("GET", f"/v1/jobs/{out['job_id']}/result")
    assert status == 200
    assert download(stack, result["object"]["url"]) == pdf
    document = result["document"]
    assert document["page_count"] == 5 and document["metadata"]["title"] == "chute sample"
    assert all(f"marker-{n}-" in document["pages"][n - 1]["text"] for n in range(1, 6))
    text = {d["name"]: d for d in result["derivatives"]}["text"]
    assert b"marker-5-" in download(stack, text["url"])

    event = webhook_for(stack, out["job_id"])
    assert event["type"] == "job.completed" and event["data"]["status"] == "completed"
    assert event["data"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    # The attempt is recorded once the receiver's answer is in: poll for it.
    deliveries = services.wait_until(
        lambda: stack.call("GET", f"/v1/jobs/{out['job_id']}/deliveries")[1]["deliveries"], 30, what="the attempt"
    )
    assert [d["status_code"] for d in deliveries] == [200]


def test_jpeg_one_shot_gets_a_thumbnail(stack: Stack) -> None:
    jpeg = sample_jpeg(800, 600)
    status, body = stack.call("POST", "/v1/jobs", files={"file": ("photo.jpg", jpeg, "image/jpeg")},
                              data={"webhook_url": stack.receiver.url("/jpeg")})  # fmt: skip
    assert status == 202, body
    job_id = body["jobs"][0]["job_id"]
    job = wait_for_job(stack, job_id)
    assert job["status"] == "completed" and job["sha256"] == hashlib.sha256(jpeg).hexdigest()
    status, result = stack.call("GET", f"/v1/jobs/{job_id}/result")
    assert (result["image"]["width"], result["image"]["height"]) == (800, 600)
    thumb = {d["name"]: d for d in result["derivatives"]}["thumb_256"]
    image = Image.open(io.BytesIO(download(stack, thumb["url"])))
    assert image.size == (256, 192) and (thumb["width"], thumb["height"]) == (256, 192)
    assert webhook_for(stack, job_id)["type"] == "job.completed"


def test_plain_text_is_stored_without_extraction(stack: Stack) -> None:
    text = b"line of text\n" * 5000
    out = chunked_upload(stack.call, text, filename="notes.txt", chunk_size=16_384)
    job = wait_for_job(stack, out["job_id"])
    assert job["status"] == "completed" and job["kind"] == "other" and job["detected_type"] == "text/plain"
    status, result = stack.call("GET", f"/v1/jobs/{out['job_id']}/result")
    assert result["derivatives"] == [] and "document" not in result and "image" not in result
    stored = download(stack, result["object"]["url"])
    assert hashlib.sha256(stored).hexdigest() == result["object"]["sha256"] == hashlib.sha256(text).hexdigest()


def test_wrong_chunk_digest_is_rejected_and_not_stored(stack: Stack) -> None:
    out = chunked_upload(stack.call, b"a" * 1024, filename="a.txt", chunk_size=512, order=[], complete=False)
    status, body = stack.call("PUT", f"/v1/uploads/{out['upload_id']}/chunks/0", data=b"a" * 512,
                              headers={"Content-Digest": content_digest(b"b" * 512)})  # fmt: skip
    assert status == 422 and body["error"]["code"] == "checksum_mismatch"
    status, info = stack.call("GET", f"/v1/uploads/{out['upload_id']}")
    assert info["received"] == [] and info["missing"] == [0, 1]


def test_missing_chunk_at_complete_is_409_with_the_indexes(stack: Stack) -> None:
    out = chunked_upload(stack.call, b"a" * 2048, filename="a.txt", chunk_size=512, order=[0, 3],
                         complete=False)  # fmt: skip
    status, body = stack.call("POST", f"/v1/uploads/{out['upload_id']}/complete")
    assert status == 409 and body["error"]["code"] == "incomplete_upload"
    assert body["error"]["details"]["missing"] == [1, 2]


def test_another_tenants_job_is_404(stack: Stack) -> None:
    out = chunked_upload(stack.call, b"mine", filename="mine.txt", chunk_size=512)
    status, body = stack.call("GET", f"/v1/jobs/{out['job_id']}", key=stack.other_keys)
    assert status == 404 and body["error"]["code"] == "job_not_found"
    status, body = stack.call("GET", f"/v1/uploads/{out['upload_id']}", key=stack.other_keys)
    assert status == 404


def test_corrupt_pdf_fails_the_job_and_the_webhook_says_so(stack: Stack) -> None:
    status, body = stack.call("POST", "/v1/jobs", files={"file": ("broken.pdf", corrupt_pdf(), "application/pdf")},
                              data={"webhook_url": stack.receiver.url("/corrupt")})  # fmt: skip
    job_id = body["jobs"][0]["job_id"]
    job = wait_for_job(stack, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "corrupt_file"
    event = webhook_for(stack, job_id)
    assert event["type"] == "job.failed" and event["data"]["error"]["code"] == "corrupt_file"


def test_storage_outage_is_retried_then_the_job_completes(stack: Stack) -> None:
    stack.proxy.cut()
    try:
        out = chunked_upload(stack.call, b"survives an outage\n" * 100, filename="outage.txt", chunk_size=1024)
        time.sleep(3)  # the upload stage fails against the cut proxy and backs off
        status, job = stack.call("GET", f"/v1/jobs/{out['job_id']}")
        assert job["status"] == "processing" and job["stage"] == "upload", job
        assert job["attempts"] >= 3, job  # assemble, then upload at least twice
    finally:
        stack.proxy.restore()
    job = wait_for_job(stack, out["job_id"])
    assert job["status"] == "completed", job
