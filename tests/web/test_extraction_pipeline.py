"""Extraction through the whole pipeline (assemble → upload → extract → notify) on the StubBroker.

The extraction library has its own unit tests; these prove what a client gets: every file of a
corpus of good and hostile files, built here, is uploaded through the API, run by an in-process
worker, and its job, result, derivatives and webhook are checked with real values. Hostile files
run with extraction isolation off (the unit env's default) and on (a child process under limits).
"""

from __future__ import annotations

import dataclasses
import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import pytest
from dramatiq.middleware import Middleware
from flask.testing import FlaskClient
from PIL import ExifTags, Image
from standardwebhooks import Webhook
from werkzeug.http import parse_options_header

from actors.extraction import sandbox
from models.settings import Settings, configure
from tests.actors.extraction import corpus, documents
from tests.actors.extraction.corpus import BOOK_METADATA, BOOK_PAGES, book, encrypted, gradient
from tests.actors.extraction.pdf_factory import make_pdf, serialize, stream
from tests.conftest import TenantKeys
from tests.support.files import corrupt_pdf
from tests.support.uploading import chunked_upload
from tests.support.webhook_receiver import WebhookReceiver

# --- The corpus ------------------------------------------------------------------------------












@cache
def illustrated() -> bytes:
    return make_pdf([["With a picture"], ["No picture"]], image=gradient(300, 200))


@cache
def nested_bomb() -> bytes:
    """~1 KB whose content stream inflates, through two Flate layers, to 100 MB of zeros."""
    outer = zlib.compress(zlib.compress(bytes(100_000_000), 9), 9)
    body = b"<< /Length %d /Filter [/FlateDecode /FlateDecode] >>\nstream\n" % len(outer)
    return make_pdf([["bomb"]], raw_content={0: body + outer + b"\nendstream"})


@cache
def slow_pdf() -> bytes:
    """6 KB of PDF that costs pypdf about 10 s of CPU: 100,000 text operators on one page."""
    content = b"BT /F1 12 Tf 72 720 Td " + b"(ab) Tj 1 0 Td " * 100_000 + b"ET"
    return make_pdf([["x"]], raw_content={0: stream(content, flate_layers=1)})


def huge_page_count() -> bytes:
    """A page tree that claims 100 million pages (rejected before the tree is walked)."""
    return serialize({
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 100000000 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
    })  # fmt: skip


def page_tree_loop() -> bytes:
    return serialize({
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
    })  # fmt: skip


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@cache
def photo(fmt: str) -> bytes:
    """400x200 landscape (left half black) stored with EXIF orientation 6, GPS, artist, serial."""
    return corpus.photo(fmt)


def lorem_pdf() -> bytes:
    """Ten pages of ~250 bytes of text each: over a small result budget, all in the text file."""
    return make_pdf([[f"Page {n} " + "lorem ipsum " * 20] for n in range(1, 11)])


# --- Running a file through the pipeline -----------------------------------------------------


@dataclass
class Run:
    """What the client sees of one job once the pipeline is drained."""

    job: dict[str, Any]
    result: dict[str, Any] | None
    fetch: Callable[[str], bytes]
    event: dict[str, Any] | None = None
    extract_runs: int = 0

    @property
    def derivatives(self) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for d in (self.result or {}).get("derivatives", [])}

    def image(self, name: str) -> Image.Image:
        """A derivative downloaded through the API and opened with Pillow."""
        im = Image.open(io.BytesIO(self.fetch(name)))
        im.load()
        return im


class Spy(Middleware):
    """Counts the messages each actor processed, so a retried message would show."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self.runs[message.actor_name] = self.runs.get(message.actor_name, 0) + 1


@pytest.fixture
def spy(stub_broker: dramatiq.Broker) -> Iterator[Spy]:
    middleware = Spy()
    stub_broker.middleware.append(middleware)
    yield middleware
    stub_broker.middleware.remove(middleware)


@pytest.fixture
def reconfigure(settings: Settings) -> Iterator[Callable[..., Settings]]:
    """``reconfigure(**changes)``: the settings the actors read at call time, restored afterwards."""

    def apply(**changes: Any) -> Settings:
        return configure(dataclasses.replace(settings, **changes))

    yield apply
    configure(settings)


def upload(client: FlaskClient, api: Any, tenant: TenantKeys, name: str, data: bytes, *, content_type: str | None,
           chunked: bool, webhook_url: str | None = None, ocr: str | None = None) -> str:  # fmt: skip
    """Send ``data`` as one ``POST /v1/jobs`` part or as a chunked upload; the job's id."""
    if chunked:
        fields: dict[str, Any] = {"content_type": content_type} if content_type else {}
        if webhook_url:
            fields["webhook_url"] = webhook_url
        if ocr:
            fields["ocr"] = ocr
        chunk_size = max(16, -(-len(data) // 3))
        return str(chunked_upload(api, data, filename=name, chunk_size=chunk_size, **fields)["job_id"])
    form: dict[str, Any] = {"file": [(io.BytesIO(data), name, content_type or "application/octet-stream")]}
    if webhook_url:
        form["webhook_url"] = webhook_url
    if ocr:
        form["ocr"] = ocr
    response = client.post("/v1/jobs", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["jobs"][0]["job_id"])


@pytest.fixture
def pipeline(client: FlaskClient, api: Any, tenant: TenantKeys, drain: Callable[..., None], spy: Spy):  # type: ignore[no-untyped-def]
    """``pipeline(name, data, content_type=, chunked=, webhook=)`` → the drained job as a :class:`Run`."""

    def fetch_for(job_id: str, result: dict[str, Any] | None) -> Callable[[str], bytes]:
        def fetch(name: str) -> bytes:
            url = {d["name"]: d["url"] for d in (result or {}).get("derivatives", [])}[name]
            response = client.get(url, headers=tenant.headers)
            assert response.status_code == 200, response.get_json()
            return bytes(response.data)

        return fetch

    def run(name: str, data: bytes, *, content_type: str | None = None, chunked: bool = False,
            webhook: bool = False, ocr: str | None = None) -> Run:  # fmt: skip
        spy.runs.clear()
        event = None
        if webhook:
            with WebhookReceiver(secret=tenant.webhook_secret) as receiver:
                job_id = upload(client, api, tenant, name, data, content_type=content_type, chunked=chunked,
                                webhook_url=receiver.url())  # fmt: skip
                drain()
                (request,) = receiver.wait_for(1)
            assert request.verified, request.verify_error
            event = dict(Webhook(tenant.webhook_secret).verify(request.body, request.headers))
        else:
            job_id = upload(client, api, tenant, name, data, content_type=content_type, chunked=chunked, ocr=ocr)
            drain()
        status, job = api("GET", f"/v1/jobs/{job_id}")
        assert status == 200, job
        status, result = api("GET", f"/v1/jobs/{job_id}/result")
        if job["status"] == "completed":
            assert status == 200, result
        else:
            assert status == 409 and result["error"]["code"] == "not_ready", result
            result = None
        return Run(job, result, fetch_for(job_id, result), event, spy.runs.get("extract", 0))

    return run


# --- What a completed job must show ----------------------------------------------------------


def assert_upright_and_private(run: Run, expected: dict[str, tuple[int, int]], fmt: str = "JPEG") -> None:
    """Derivatives of :func:`photo`: portrait (orientation applied), downloadable, without EXIF."""
    assert {n: (d["width"], d["height"]) for n, d in run.derivatives.items()} == expected
    for name, d in run.derivatives.items():
        data = run.fetch(name)
        assert d["size"] == len(data) > 0
        im = Image.open(io.BytesIO(data))
        assert (im.format, im.size) == (fmt, expected[name])
        grey = im.convert("L")
        top, bottom = grey.getpixel((im.width // 2, im.height // 8)), grey.getpixel((im.width // 2, im.height * 7 // 8))
        assert isinstance(top, int) and isinstance(bottom, int)
        assert top < 40 and bottom > 215, (name, top, bottom)  # stored left (black) half is now on top
        exif = im.getexif()
        assert ExifTags.Base.GPSInfo not in exif and exif.get_ifd(ExifTags.IFD.GPSInfo) == {}
        for secret in (corpus.ARTIST.encode(), corpus.SERIAL.encode(), b"xmpmeta", b"Exif\x00\x00"):
            assert secret not in data


def check_book(run: Run) -> None:
    job, result = run.job, run.result
    assert result is not None
    assert (job["kind"], job["detected_type"], job["type_mismatch"]) == ("pdf", "application/pdf", False)
    assert (result["kind"], result["mime"]) == ("pdf", "application/pdf")
    doc = result["document"]
    assert (doc["page_count"], doc["version"], doc["encrypted"], doc["locked"]) == (3, "1.5", False, False)
    assert doc["metadata"] == BOOK_METADATA
    assert [p["number"] for p in doc["pages"]] == [1, 2, 3]
    assert [p["text"].split() for p in doc["pages"]] == [" ".join(lines).split() for lines in BOOK_PAGES]
    assert doc["text_truncated"] is False and doc["unreadable_pages"] == []
    assert set(run.derivatives) == {"text"}
    text = run.derivatives["text"]
    assert (text["filename"], text["content_type"]) == ("text.txt", "text/plain; charset=utf-8")
    full = run.fetch("text").decode("utf-8")
    assert text["size"] == len(full.encode("utf-8"))
    assert [p.split() for p in full.split("\f")] == [" ".join(lines).split() for lines in BOOK_PAGES]


def check_illustrated(run: Run) -> None:
    assert run.result is not None and run.result["document"]["page_count"] == 2
    assert run.result["document"]["pages"][0]["text"].strip() == "With a picture"
    preview = run.derivatives["preview"]
    assert (preview["filename"], preview["content_type"]) == ("preview.jpg", "image/jpeg")
    assert (preview["width"], preview["height"]) == (300, 200)
    preview_image = run.image("preview")
    assert (preview_image.format, preview_image.size) == ("JPEG", (300, 200))
    im = preview_image.convert("RGB")
    left, right = im.getpixel((5, 100)), im.getpixel((295, 100))
    assert isinstance(left, tuple) and isinstance(right, tuple) and left[0] < 40 and right[0] > 215


def check_locked(run: Run) -> None:
    assert run.result is not None
    doc = run.result["document"]
    assert (doc["encrypted"], doc["locked"], doc["page_count"]) == (True, True, 3)
    empty = {"text": "", "text_source": "layer", "ocr_confidence": None}
    assert doc["pages"] == [{"number": n, **empty} for n in (1, 2, 3)]
    assert doc["metadata"]["title"] is None and run.derivatives == {}


def check_unlocked(run: Run) -> None:
    assert run.result is not None
    doc = run.result["document"]
    assert (doc["encrypted"], doc["locked"], doc["page_count"]) == (True, False, 3)
    assert doc["metadata"]["author"] == "Ada Lovelace"
    assert doc["pages"][1]["text"].strip() == "Chapter two"
    assert b"The end (really)" in run.fetch("text")


def check_nested(run: Run) -> None:
    assert run.result is not None
    assert run.result["document"]["pages"][0]["text"].strip() == "Deeply packed text"


def check_photo(fmt: str) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        assert run.result is not None
        assert (run.job["kind"], run.job["detected_type"]) == ("image", f"image/{fmt.lower()}")
        image = run.result["image"]
        assert (image["format"], image["width"], image["height"], image["mode"]) == (fmt, 400, 200, "RGB")
        assert (image["frames"], image["animated"]) == (1, False)
        # An allowlist of camera tags; no GPS (keep_exif_gps is off), no artist, no serial number.
        assert image["exif"] == {"Make": "Acme", "Model": "Cam 1", "Orientation": 6, "FNumber": 2.8}
        assert "document" not in run.result
        assert_upright_and_private(run, {"thumb_256": (128, 256), "thumb_1024": (200, 400), "web": (200, 400)})

    return check


def check_gif(run: Run) -> None:
    assert run.result is not None
    image = run.result["image"]
    assert (image["format"], image["width"], image["height"], image["frames"], image["animated"]) == (
        "GIF", 64, 48, 5, True)  # fmt: skip
    thumb = run.image("thumb_256").convert("RGB")
    assert thumb.size == (64, 48)
    red, green, blue = thumb.getpixel((32, 24))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60  # the first frame


def check_png_named_pdf(run: Run) -> None:
    job = run.job
    assert (job["filename"], job["content_type"], job["detected_type"]) == (
        "report.pdf",
        "application/pdf",
        "image/png",
    )
    assert job["type_mismatch"] is True and job["kind"] == "image"
    assert run.result is not None and run.result["kind"] == "image" and "document" not in run.result
    assert run.result["image"]["format"] == "PNG" and run.result["declared_type"] == "application/pdf"
    assert run.image("thumb_256").size == (128, 256)


def check_other(mime: str) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        assert run.result is not None
        assert (run.job["kind"], run.job["detected_type"]) == ("other", mime)
        assert (run.result["kind"], run.result["mime"], run.result["derivatives"]) == ("other", mime, [])
        assert "document" not in run.result and "image" not in run.result

    return check


@dataclass(frozen=True)
class Good:
    name: str
    data: Callable[[], bytes]
    check: Callable[[Run], None]
    content_type: str | None = None
    chunked: bool = False


GOOD = [
    pytest.param(Good("book.pdf", book, check_book, "application/pdf", chunked=True), id="pdf-multipage-metadata"),
    pytest.param(Good("figure.pdf", illustrated, check_illustrated), id="pdf-page1-image-preview"),
    pytest.param(Good("locked.pdf", lambda: encrypted("user-secret", "AES-256"), check_locked), id="pdf-encrypted"),
    pytest.param(Good("open.pdf", lambda: encrypted("", "AES-128"), check_unlocked), id="pdf-encrypted-empty-pw"),
    pytest.param(
        Good("packed.pdf", lambda: make_pdf([["Deeply packed text"]], flate_layers=3), check_nested),
        id="pdf-nested-compression",
    ),
    pytest.param(
        Good("photo.jpg", lambda: photo("JPEG"), check_photo("JPEG"), "image/jpeg", chunked=True),
        id="jpeg-exif-orientation-gps",
    ),
    pytest.param(Good("photo.png", lambda: photo("PNG"), check_photo("PNG"), "image/png"), id="png-exif"),
    pytest.param(Good("photo.webp", lambda: photo("WEBP"), check_photo("WEBP"), "image/webp"), id="webp-exif"),
    pytest.param(Good("anim.gif", corpus.animated_gif, check_gif, "image/gif"), id="gif-animated"),
    pytest.param(Good("report.pdf", lambda: photo("PNG"), check_png_named_pdf, "application/pdf"), id="png-named-pdf"),
    pytest.param(
        Good("notes.txt", lambda: b"just some notes\n" * 50, check_other("text/plain"), "text/plain"), id="other-text"
    ),
    pytest.param(
        Good("a.jpg", lambda: b"PK\x05\x06" + bytes(18), check_other("application/zip"), "image/jpeg"),
        id="other-zip-named-jpg",
    ),
]


@pytest.mark.parametrize("case", GOOD)
def test_good_files_give_their_result_and_derivatives(pipeline, case: Good) -> None:  # type: ignore[no-untyped-def]
    run: Run = pipeline(case.name, case.data(), content_type=case.content_type, chunked=case.chunked)

    assert run.job["status"] == "completed" and run.job["error"] is None, run.job
    assert run.result is not None
    if run.result["kind"] in ("pdf", "image"):
        assert run.job["attempts"] == 3 and run.extract_runs == 1
    else:  # upload recorded the result, and the pipeline passed over extract
        assert run.job["attempts"] == 2 and run.extract_runs == 0
    case.check(run)


@pytest.mark.parametrize("case", [GOOD[0], GOOD[5]])
def test_good_files_with_isolation_on(pipeline, reconfigure, case: Good) -> None:  # type: ignore[no-untyped-def]
    """The same results when the extract stage parses in a child process (production's default)."""
    reconfigure(extract_isolation=True)
    run: Run = pipeline(case.name, case.data(), content_type=case.content_type, chunked=case.chunked)

    assert run.job["status"] == "completed", run.job
    case.check(run)


# --- Hostile files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    name: str
    data: Callable[[], bytes]
    code: str
    settings: dict[str, Any] = field(default_factory=dict)
    #: Only a child process is bounded in time and memory: in process (trusted input) these would just run.
    isolated_only: bool = False


def _png_truncated() -> bytes:
    return truncated(corpus.encode(corpus.landscape(), "PNG"))


HOSTILE = [
    pytest.param(Hostile("bomb.png", lambda: corpus.png(100_000, 100_000), "decompression_bomb"), id="png-bomb"),
    pytest.param(
        Hostile("big.png", lambda: corpus.png(2_000, 1_000), "decompression_bomb", {"max_image_pixels": 1_000_000}),
        id="png-over-configured-pixels",
    ),
    pytest.param(Hostile("bomb.pdf", nested_bomb, "decompression_bomb"), id="pdf-nested-flate-bomb"),
    pytest.param(
        Hostile("filters.pdf", lambda: make_pdf([["x"]], flate_layers=17), "decompression_bomb"),
        id="pdf-too-many-filters",
    ),
    pytest.param(
        Hostile("long.pdf", lambda: make_pdf([["p"]] * 12), "too_many_pages", {"max_pdf_pages": 10}),
        id="pdf-too-many-pages",
    ),
    pytest.param(Hostile("huge.pdf", huge_page_count, "too_many_pages"), id="pdf-declares-1e8-pages"),
    pytest.param(Hostile("half.pdf", lambda: truncated(book()), "corrupt_file"), id="pdf-truncated"),
    pytest.param(Hostile("junk.pdf", corrupt_pdf, "corrupt_file"), id="pdf-garbage"),
    pytest.param(Hostile("loop.pdf", page_tree_loop, "corrupt_file"), id="pdf-page-tree-loop"),
    pytest.param(Hostile("half.png", _png_truncated, "corrupt_file"), id="png-truncated"),
    pytest.param(Hostile("half.jpg", lambda: truncated(photo("JPEG")), "corrupt_file"), id="jpeg-truncated"),
    pytest.param(
        Hostile("half.gif", lambda: truncated(corpus.encode(corpus.landscape(), "GIF")), "corrupt_file"),
        id="gif-truncated",
    ),
    pytest.param(Hostile("half.webp", lambda: truncated(photo("WEBP")), "corrupt_file"), id="webp-truncated"),
    pytest.param(Hostile("x.gif", lambda: b"GIF89a" + bytes(10), "corrupt_file"), id="gif-magic-only"),
    pytest.param(
        Hostile("slow.pdf", slow_pdf, "extraction_timeout", {"extract_time_limit_seconds": 1}, isolated_only=True),
        id="pdf-cpu-timeout",
    ),
    pytest.param(
        Hostile(
            "wide.png",
            lambda: corpus.bilevel_png(12_000),
            "extraction_limit_exceeded",
            {"extract_memory_limit_mb": 192, "max_image_pixels": 200_000_000},
            isolated_only=True,
        ),
        id="png-over-memory-limit",
    ),
]


def hostile_runs() -> list[Any]:
    """Every hostile file in process (the unit env's default) and isolated (production's)."""
    runs = []
    for param in HOSTILE:
        case = param.values[0]
        assert isinstance(case, Hostile)
        for isolation in (False, True):
            if isolation or not case.isolated_only:
                runs.append(pytest.param(case, isolation, id=f"{param.id}-{'isolated' if isolation else 'in_process'}"))
    return runs


@pytest.mark.parametrize(("case", "isolation"), hostile_runs())
def test_hostile_files_fail_once_with_a_specific_code(pipeline, reconfigure, case: Hostile, isolation: bool) -> None:  # type: ignore[no-untyped-def]
    reconfigure(extract_isolation=isolation, **case.settings)

    run: Run = pipeline(case.name, case.data(), webhook=True)

    assert run.job["status"] == "failed" and run.job["error"]["code"] == case.code, run.job
    # assemble + upload + extract once: a file that can never be extracted is not retried
    assert run.job["attempts"] == 3 and run.extract_runs == 1
    assert run.event is not None and run.event["type"] == "job.failed"
    assert run.event["data"]["error"]["code"] == case.code and run.event["data"]["job_id"] == run.job["job_id"]


def test_a_file_the_client_must_fix_is_acked_not_dead_lettered(pipeline, stub_broker, reconfigure) -> None:  # type: ignore[no-untyped-def]
    """Dead letters mean bugs: a bomb fails its job at once, and its message is acked, not sent to .XQ."""
    reconfigure(extract_isolation=True)
    run: Run = pipeline("bomb.png", corpus.png(100_000, 100_000))

    assert run.job["error"]["code"] == "decompression_bomb" and run.extract_runs == 1
    assert stub_broker.dead_letters == []


def test_what_chute_cannot_handle_is_dead_lettered_without_a_retry(pipeline, stub_broker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A bug (an exception nobody expected) fails the job as internal_error and leaves its message in .XQ."""
    import actors.extract

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug in extraction")

    monkeypatch.setattr(actors.extract, "extract_file", broken)
    run: Run = pipeline("photo.jpg", photo("JPEG"))

    assert run.job["error"]["code"] == "internal_error" and run.extract_runs == 1
    (dead,) = [m for m in stub_broker.dead_letters if m.actor_name == "extract"]
    assert dead.args == (run.job["job_id"],)


def test_worker_survives_a_timeout_and_keeps_extracting(client, tenant, api, drain, reconfigure) -> None:  # type: ignore[no-untyped-def]
    """A file that would take pypdf ~10 s is cut at 1 s; the good files sent with it complete."""
    reconfigure(extract_isolation=True, extract_time_limit_seconds=1)
    files = [("slow.pdf", slow_pdf()), ("photo.jpg", photo("JPEG")), ("book.pdf", book())]
    data = {"file": [(io.BytesIO(content), name) for name, content in files]}
    response = client.post("/v1/jobs", data=data, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 202
    ids = [j["job_id"] for j in response.get_json()["jobs"]]
    drain()

    jobs = [api("GET", f"/v1/jobs/{job_id}")[1] for job_id in ids]
    assert [(j["status"], (j["error"] or {}).get("code")) for j in jobs] == [
        ("failed", "extraction_timeout"), ("completed", None), ("completed", None)]  # fmt: skip


# --- Settings that shape the result ----------------------------------------------------------


def test_webp_derivatives_at_configured_sizes(pipeline, reconfigure) -> None:  # type: ignore[no-untyped-def]
    reconfigure(derivative_format="WEBP", thumbnail_sizes=(64, 200))
    run: Run = pipeline("photo.jpg", photo("JPEG"))

    assert run.job["status"] == "completed", run.job
    for name, d in run.derivatives.items():
        assert (d["filename"], d["content_type"]) == (f"{name}.webp", "image/webp")
    assert_upright_and_private(run, {"thumb_64": (32, 64), "thumb_200": (100, 200), "web": (200, 400)}, "WEBP")


def test_gps_kept_in_the_result_only_when_asked(pipeline, reconfigure) -> None:  # type: ignore[no-untyped-def]
    reconfigure(keep_exif_gps=True)
    run: Run = pipeline("photo.jpg", photo("JPEG"), content_type="image/jpeg")

    assert run.result is not None
    exif = run.result["image"]["exif"]
    assert exif["gps"] == {"latitude": corpus.LATITUDE, "longitude": corpus.LONGITUDE}
    assert "Artist" not in exif and "BodySerialNumber" not in exif
    # never in the derivatives, whatever the setting
    assert_upright_and_private(run, {"thumb_256": (128, 256), "thumb_1024": (200, 400), "web": (200, 400)})


def test_page_text_over_the_result_budget_is_in_the_text_derivative(pipeline, reconfigure) -> None:  # type: ignore[no-untyped-def]
    reconfigure(max_text_bytes_in_result=800)
    run: Run = pipeline("lorem.pdf", lorem_pdf(), content_type="application/pdf")

    assert run.result is not None
    doc = run.result["document"]
    assert doc["page_count"] == 10 and doc["text_truncated"] is True
    kept = [p for p in doc["pages"] if p["text"]]
    assert 1 <= len(kept) < 10 and [p["number"] for p in kept] == list(range(1, len(kept) + 1))
    assert sum(len(p["text"].encode()) for p in kept) <= 800
    assert len(json.dumps(run.result)) < 4000  # the result stays small; the link has the rest
    assert urlsplit(run.derivatives["text"]["url"]).path.endswith(f"/v1/jobs/{run.job['job_id']}/derivatives/text")
    full = run.fetch("text").decode("utf-8")
    assert full.count("lorem ipsum") == 200 and len(full.split("\f")) == 10


# --- Downloads -------------------------------------------------------------------------------


def test_download_and_derivatives_are_streamed_to_the_owner_only(  # type: ignore[no-untyped-def]
    client, tenant, other_tenant, api, pipeline
) -> None:
    data = photo("JPEG")
    run: Run = pipeline("photo.jpg", data)
    job_id = run.job["job_id"]

    assert run.result is not None
    assert urlsplit(run.result["object"]["url"]).path.endswith(f"/v1/jobs/{job_id}/download")
    original = client.get(run.result["object"]["url"], headers=tenant.headers)
    assert original.status_code == 200 and original.data == data
    assert original.mimetype == "image/jpeg"
    assert parse_options_header(original.headers["Content-Disposition"]) == ("attachment", {"filename": "photo.jpg"})
    thumb = client.get(f"/v1/jobs/{job_id}/derivatives/thumb_256", headers=tenant.headers)
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.data)).size == (128, 256)

    for path in (f"/v1/jobs/{job_id}/download", f"/v1/jobs/{job_id}/derivatives/thumb_256",
                 f"/v1/jobs/{job_id}/derivatives/web"):  # fmt: skip
        status, body = api("GET", path, key=other_tenant)
        assert status == 404 and body["error"]["code"] == "job_not_found", path
    status, body = api("GET", f"/v1/jobs/{job_id}/derivatives/thumb_9999")
    assert status == 404 and body["error"]["code"] == "derivative_not_found"


def test_download_before_the_file_is_stored_is_409(client, tenant, api, stub_broker) -> None:  # type: ignore[no-untyped-def]
    job_id = upload(client, api, tenant, "book.pdf", book(), content_type="application/pdf", chunked=False)

    for path in ("/download", "/derivatives/text", "/result"):
        status, body = api("GET", f"/v1/jobs/{job_id}{path}")
        assert status == 409 and body["error"]["code"] == "not_ready", path


def test_a_failed_jobs_derivatives_are_404_and_its_original_is_kept(client, tenant, api, pipeline) -> None:  # type: ignore[no-untyped-def]
    data = corpus.png(100_000, 100_000)
    run: Run = pipeline("bomb.png", data)
    assert run.job["status"] == "failed"

    status, body = api("GET", f"/v1/jobs/{run.job['job_id']}/derivatives/thumb_256")
    assert status == 404 and body["error"]["code"] == "derivative_not_found"
    original = client.get(f"/v1/jobs/{run.job['job_id']}/download", headers=tenant.headers)
    assert original.status_code == 200 and original.data == data


# --- Regressions: bugs these tests found -------------------------------------------------------


@pytest.mark.parametrize("filename", ["rapport – été.pdf", 'say "cheese".jpg'])
def test_download_names_any_filename_correctly(client, tenant, pipeline, filename: str) -> None:  # type: ignore[no-untyped-def]
    """The Content-Disposition of a download must be a valid header for any name a client may upload.

    A WSGI header value must be Latin-1 (PEP 3333): werkzeug's and gunicorn's servers fail on
    "–"; a quote in the name ends the quoted string early, so the browser saves "say ".
    """
    # chunked: the name travels in JSON (werkzeug's test client does not escape quotes in a form part's filename)
    run: Run = pipeline(filename, b"plain text\n", chunked=True)
    assert run.job["filename"] == filename
    response = client.get(f"/v1/jobs/{run.job['job_id']}/download", headers=tenant.headers)
    assert response.status_code == 200 and response.data == b"plain text\n"
    disposition = response.headers["Content-Disposition"]
    disposition.encode("latin-1")
    assert parse_options_header(disposition) == ("attachment", {"filename": filename})


@pytest.mark.parametrize(
    ("filename", "declared"),
    [("data.json", "application/json"), ("feed.xml", "application/xml"), ("logo.svg", "image/svg+xml")],
)
def test_text_formats_declared_by_their_own_type_are_no_mismatch(pipeline, filename: str, declared: str) -> None:  # type: ignore[no-untyped-def]
    """The bytes of JSON, XML or SVG can only be detected as text/plain, which does not contradict them."""
    data = {"data.json": b'{"a": 1}\n', "feed.xml": b"<?xml version='1.0'?><feed/>\n",
            "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n'}[filename]  # fmt: skip
    run: Run = pipeline(filename, data, content_type=declared)

    assert (run.job["content_type"], run.job["detected_type"]) == (declared, "text/plain")
    assert run.job["type_mismatch"] is False


def test_an_extraction_child_that_lost_its_reply_is_retried(pipeline, reconfigure, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A child that exits without a reply is the environment's fault (sandbox.py says: retry), not the file's."""
    reconfigure(extract_isolation=True)
    real = sandbox._read_reply
    calls: list[int] = []

    def lose_the_first_reply(reply_path: Any) -> dict[str, Any] | None:
        calls.append(1)
        return None if len(calls) == 1 else real(reply_path)

    monkeypatch.setattr(sandbox, "_read_reply", lose_the_first_reply)
    run: Run = pipeline("book.pdf", book())

    assert run.job["status"] == "completed", run.job
    assert run.job["attempts"] == 4 and run.extract_runs == 2


# --- Tables and OCR (documents.py builds the files) ---------------------------------------------


def test_tables_come_back_in_the_result_and_as_csv(pipeline) -> None:  # type: ignore[no-untyped-def]
    run: Run = pipeline("tables.pdf", documents.tables_pdf(), chunked=True)

    assert run.job["status"] == "completed", run.job
    assert run.result is not None
    tables = run.result["document"]["tables"]
    assert [(t["header"], t["rows"]) for t in tables] == [
        (rows[0], rows[1:]) for rows in (documents.PRICES, documents.PEOPLE, documents.STOCK)
    ]
    assert run.result["ocr"] == "not_needed" and run.result["ocr_error"] is None
    csv_file = run.derivatives["table-p3-1"]
    assert csv_file["content_type"] == "text/csv; charset=utf-8"
    assert run.fetch("table-p3-1").decode("utf-8").splitlines() == [",".join(r) for r in documents.STOCK]


@pytest.mark.parametrize("isolation", [False, True], ids=["in_process", "isolated"])
@pytest.mark.usefixtures("tesseract")
def test_a_scan_is_read_unless_the_upload_says_never(pipeline, reconfigure, isolation: bool) -> None:  # type: ignore[no-untyped-def]
    reconfigure(extract_isolation=isolation)
    scan = documents.scanned_pdf([documents.SCAN_LINES[0]])

    read: Run = pipeline("scan.pdf", scan, chunked=True)  # ocr defaults to auto
    assert read.result is not None and read.result["ocr"] == "done"
    page = read.result["document"]["pages"][0]
    assert page["text_source"] == "ocr" and page["ocr_confidence"] > 50
    assert documents.words(" ".join(documents.SCAN_LINES[0])) <= documents.words(page["text"]) | {"4417"}
    assert documents.words(read.fetch("text").decode("utf-8")) >= {"QUARTERLY", "HARBOUR", "REPORT"}

    left: Run = pipeline("scan.pdf", scan, ocr="never")  # one POST /v1/jobs part with the form field
    assert left.result is not None and left.result["ocr"] == "off"
    assert left.result["document"]["pages"][0]["text"] == "" and "text" not in left.derivatives


@pytest.mark.usefixtures("tesseract")
def test_a_photo_of_text_is_read(pipeline) -> None:  # type: ignore[no-untyped-def]
    run: Run = pipeline("receipt.jpg", documents.photo_of_text(), ocr="always")

    assert run.result is not None and run.result["ocr"] == "done"
    assert {"INVOICE", "PAYMENT"} <= documents.words(run.result["image"]["text"])
    assert run.fetch("text").decode("utf-8") == run.result["image"]["text"]


def test_without_the_language_data_the_result_says_ocr_unavailable(pipeline, reconfigure, api) -> None:  # type: ignore[no-untyped-def]
    reconfigure(ocr_languages=("qqq",))
    run: Run = pipeline("scan.pdf", documents.scanned_pdf([documents.SCAN_LINES[0]]))

    assert run.job["status"] == "completed"
    assert run.result is not None and run.result["ocr"] == "unavailable"
    assert run.result["ocr_error"]["code"] == "ocr_unavailable"


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "one_shot"])
def test_an_unknown_ocr_mode_is_refused(client, tenant, api, chunked: bool) -> None:  # type: ignore[no-untyped-def]
    if chunked:
        status, body = api("POST", "/v1/uploads", json={"filename": "a.pdf", "size": 3, "ocr": "sometimes"})
    else:
        form = {"file": [(io.BytesIO(b"abc"), "a.pdf", "application/pdf")], "ocr": "sometimes"}
        response = client.post("/v1/jobs", data=form, headers=tenant.headers, content_type="multipart/form-data")
        status, body = response.status_code, response.get_json()
    assert status == 422, body
    assert body["error"]["details"].get("field") == "ocr" or "ocr" in json.dumps(body["error"]["details"])


@pytest.mark.usefixtures("tesseract")
def test_readyz_says_whether_ocr_can_run(client) -> None:  # type: ignore[no-untyped-def]
    body = client.get("/readyz").get_json()
    assert body["ocr"]["available"] is True and "eng" in body["ocr"]["languages"]
    assert body["ocr"]["version"].startswith("tesseract")
