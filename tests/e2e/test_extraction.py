"""Extraction through the real stack: RabbitMQ, PostgreSQL, moto's S3 server, a webhook receiver, and
chute worker processes that parse in an isolated child (the production default).

The StubBroker suite (tests/web/test_extraction_pipeline.py) covers the whole corpus; these check
that the same results, derivatives and failures hold across real processes and a real store.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import ExifTags, Image

from tests.actors.extraction import corpus, documents
from tests.actors.extraction.documents import SCAN_LINES
from tests.actors.extraction.pdf_factory import PdfImage, make_pdf, ruled_table, stream
from tests.e2e.conftest import Stack
from tests.e2e.test_pipeline import download, wait_for_job, webhook_for


def send(stack: Stack, name: str, data: bytes, content_type: str, hook: str) -> str:
    """One ``POST /v1/jobs`` part with a webhook; the job's id."""
    status, body = stack.call("POST", "/v1/jobs", files={"file": (name, data, content_type)},
                              data={"webhook_url": stack.receiver.url(hook)})  # fmt: skip
    assert status == 202, body
    return str(body["jobs"][0]["job_id"])


def result_of(stack: Stack, job_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The completed job's result and its derivatives by name."""
    status, result = stack.call("GET", f"/v1/jobs/{job_id}/result")
    assert status == 200, result
    return result, {d["name"]: d for d in result["derivatives"]}


def test_pdf_page_one_image_gives_a_preview_behind_a_presigned_redirect(stack: Stack) -> None:
    row = b"".join(bytes((x * 255 // 299, 0, 64)) for x in range(300))  # red rising left to right
    pdf = make_pdf([["With a picture"], ["Second page"]], image=PdfImage(300, 200, row * 200),
                   info={"Title": "Figures", "CreationDate": "D:20240131120000Z"})  # fmt: skip
    job_id = send(stack, "figures.pdf", pdf, "application/pdf", "/e2e-preview")
    job = wait_for_job(stack, job_id)
    assert job["status"] == "completed" and job["attempts"] == 3, job
    result, derivatives = result_of(stack, job_id)

    document = result["document"]
    assert (document["page_count"], document["metadata"]["title"]) == (2, "Figures")
    assert document["metadata"]["created"] == "2024-01-31T12:00:00+00:00"
    assert [p["text"].strip() for p in document["pages"]] == ["With a picture", "Second page"]
    preview = derivatives["preview"]
    assert (preview["width"], preview["height"], preview["content_type"]) == (300, 200, "image/jpeg")
    image = Image.open(io.BytesIO(download(stack, preview["url"])))
    assert (image.format, image.size) == ("JPEG", (300, 200))
    left, right = image.convert("RGB").getpixel((5, 100)), image.convert("RGB").getpixel((295, 100))
    assert isinstance(left, tuple) and isinstance(right, tuple) and left[0] < 40 and right[0] > 215
    assert download(stack, derivatives["text"]["url"]).split(b"\f")[1].strip() == b"Second page"
    status, body = stack.call("GET", f"/v1/jobs/{job_id}/derivatives/preview", key=stack.other_keys,
                              allow_redirects=False)  # fmt: skip
    assert status == 404 and body["error"]["code"] == "job_not_found"


def test_decompression_bomb_fails_at_once_and_the_webhook_says_why(stack: Stack) -> None:
    bomb = corpus.png(100_000, 100_000)  # 10 gigapixels declared in 57 bytes
    job_id = send(stack, "bomb.png", bomb, "image/png", "/e2e-bomb")
    job = wait_for_job(stack, job_id)

    assert job["status"] == "failed" and job["error"]["code"] == "decompression_bomb", job
    assert job["attempts"] == 3, job  # assemble, upload, extract once: not retried
    event = webhook_for(stack, job_id)
    assert event["type"] == "job.failed" and event["data"]["error"]["code"] == "decompression_bomb"
    assert event["data"]["attempts"] == 3
    status, body = stack.call("GET", f"/v1/jobs/{job_id}/result")
    assert status == 409 and body["error"]["code"] == "not_ready"


def test_animated_gif_counts_its_frames(stack: Stack) -> None:
    job_id = send(stack, "anim.gif", corpus.animated_gif(frames=5), "image/gif", "/e2e-gif")
    assert wait_for_job(stack, job_id)["status"] == "completed"
    result, derivatives = result_of(stack, job_id)

    image = result["image"]
    assert (image["format"], image["width"], image["height"], image["frames"], image["animated"]) == (
        "GIF", 64, 48, 5, True)  # fmt: skip
    thumb = Image.open(io.BytesIO(download(stack, derivatives["thumb_256"]["url"])))
    assert (thumb.format, thumb.size) == ("JPEG", (64, 48))


def test_png_named_pdf_is_an_image_and_the_mismatch_is_reported(stack: Stack) -> None:
    job_id = send(stack, "report.pdf", corpus.photo("PNG"), "application/pdf", "/e2e-mismatch")
    job = wait_for_job(stack, job_id)

    assert job["status"] == "completed", job
    assert (job["content_type"], job["detected_type"], job["kind"]) == ("application/pdf", "image/png", "image")
    assert job["type_mismatch"] is True
    assert webhook_for(stack, job_id)["data"]["type_mismatch"] is True
    result, derivatives = result_of(stack, job_id)
    assert result["image"]["format"] == "PNG" and "document" not in result
    assert "gps" not in result["image"]["exif"]
    # Stored 400x200 with EXIF orientation 6: the thumbnail is upright (portrait) and carries no EXIF.
    thumb = Image.open(io.BytesIO(download(stack, derivatives["thumb_256"]["url"])))
    assert thumb.size == (128, 256)
    assert ExifTags.Base.GPSInfo not in thumb.getexif() and len(thumb.getexif()) == 0


def test_a_table_and_a_scan_through_the_real_stack(stack: Stack, tesseract: None) -> None:
    """Worker processes parse in their isolated child: pdfplumber's tables and Tesseract's text come back."""
    table = stream(ruled_table(72, 650, [150, 60, 80], documents.PRICES))
    pdf = make_pdf([[], []], raw_content={0: table}, scans={1: documents.scan(documents.written_page(SCAN_LINES[1]))})
    status, body = stack.call("POST", "/v1/jobs", files={"file": ("mixed.pdf", pdf, "application/pdf")},
                              data={"webhook_url": stack.receiver.url("/e2e-ocr"), "ocr": "auto"})  # fmt: skip
    assert status == 202, body
    job_id = str(body["jobs"][0]["job_id"])
    job = wait_for_job(stack, job_id)
    assert job["status"] == "completed", job
    result, derivatives = result_of(stack, job_id)

    (found,) = result["document"]["tables"]
    assert [found["header"], *found["rows"]] == documents.PRICES
    assert download(stack, derivatives["table-p1-1"]["url"]).decode("utf-8").splitlines()[1] == "Apples,3,1.20"
    assert result["ocr"] == "done"
    assert [p["text_source"] for p in result["document"]["pages"]] == ["layer", "ocr"]
    text = download(stack, derivatives["text"]["url"]).decode("utf-8").split("\f")
    assert {"INVOICE", "PAYMENT"} <= documents.words(text[1])
