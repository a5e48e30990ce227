"""OCR: scans, photos of text and mixed PDFs read by Tesseract; modes, limits and a missing engine."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from PIL import Image

from actors.extraction import ExtractLimits, extract_file, image
from actors.extraction.ocr import looks_like_document, probe
from actors.extraction.sandbox import run_isolated
from models.errors import FileRejected
from tests.actors.extraction import corpus
from tests.actors.extraction.conftest import Extract
from tests.actors.extraction.documents import (
    SCAN_LINES,
    huge_scan_pdf,
    mixed_pdf,
    photo_of_text,
    scanned_pdf,
    words,
    written_page,
)
from tests.actors.extraction.pdf_factory import make_pdf

pytestmark = pytest.mark.usefixtures("tesseract")


def expected_words(lines: list[str]) -> set[str]:
    return words(" ".join(lines))


def assert_read(text: str, lines: list[str]) -> None:
    """Tesseract may miss a character; it must get nearly every word."""
    missing = expected_words(lines) - words(text)
    assert len(missing) <= 1, (missing, text)


def test_scanned_pdf_is_read(extract: Extract) -> None:
    result = extract(scanned_pdf([SCAN_LINES[0]]))

    assert (result.ocr, result.ocr_error) == ("done", None)
    doc = result.document
    assert doc is not None
    (page,) = doc["pages"]
    assert page["text_source"] == "ocr"
    assert page["ocr_confidence"] > 70
    assert_read(page["text"], SCAN_LINES[0])
    text = result.derivative("text")
    assert text is not None
    assert_read(text.path.read_text(encoding="utf-8"), SCAN_LINES[0])


def test_photo_of_text_is_read(extract: Extract) -> None:
    result = extract(photo_of_text())

    assert result.ocr == "done"
    image = result.image
    assert image is not None and image["text_source"] == "ocr" and image["ocr_confidence"] > 50
    assert_read(image["text"], SCAN_LINES[1])
    text = result.derivative("text")
    assert text is not None and text.path.read_text(encoding="utf-8") == image["text"]
    assert {d.name for d in result.derivatives} == {"thumb_256", "thumb_1024", "web", "text"}


def test_mixed_pdf_keeps_the_text_layer_and_reads_the_scans(extract: Extract) -> None:
    result = extract(mixed_pdf())

    doc = result.document
    assert doc is not None and result.ocr == "done"
    assert [p["text_source"] for p in doc["pages"]] == ["layer", "ocr", "layer", "ocr"]
    assert [p["ocr_confidence"] is None for p in doc["pages"]] == [True, False, True, False]
    assert doc["pages"][0]["text"].strip() == "Typed page one"
    assert_read(doc["pages"][1]["text"], SCAN_LINES[0])
    assert_read(doc["pages"][3]["text"], SCAN_LINES[1])
    text = result.derivative("text")
    assert text is not None
    pages = text.path.read_text(encoding="utf-8").split("\f")
    assert [p.strip() for p in pages] == [p["text"].strip() for p in doc["pages"]]


def test_never_reads_nothing_and_always_reads_every_page(extract: Extract) -> None:
    off = extract(mixed_pdf(), ocr_mode="never")
    assert off.ocr == "off" and off.document is not None
    assert [p["text_source"] for p in off.document["pages"]] == ["layer"] * 4
    assert off.document["pages"][1]["text"] == ""

    typed = make_pdf([["Typed words only"]])
    always = extract(typed, ocr_mode="always")
    assert always.ocr == "done" and always.document is not None
    page = always.document["pages"][0]
    assert page["text_source"] == "ocr" and words(page["text"]) == {"TYPED", "WORDS", "ONLY"}


def test_auto_leaves_photos_and_blank_scans_alone(extract: Extract) -> None:
    photo = extract(corpus.photo("JPEG"))
    assert photo.ocr == "not_needed" and photo.image is not None
    assert (photo.image["text"], photo.image["text_source"]) == ("", None)
    assert photo.derivative("text") is None

    blank = extract(scanned_pdf([[]]))
    assert blank.ocr == "not_needed" and blank.document is not None
    assert blank.document["pages"][0]["text_source"] == "layer"
    assert blank.derivative("text") is None


def test_auto_judges_a_photo_from_the_pixels_already_decoded(
    tmp_path: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photo is found not to need OCR from the thumbnails' pixels: it is not decoded again."""

    def decode_again(*args: object) -> Image.Image:
        raise AssertionError("decoded again for OCR")

    monkeypatch.setattr(image, "_pixels_for_ocr", decode_again)
    path = tmp_path / "photo.jpg"
    path.write_bytes(corpus.photo("JPEG"))
    limits = ExtractLimits(isolation=False, tesseract=probe().command)

    assert extract_file(path, out_dir, limits).ocr == "not_needed"


def test_missing_tesseract_says_unavailable(extract: Extract) -> None:
    for tesseract in (None, "/nonexistent/tesseract"):
        result = extract(scanned_pdf([SCAN_LINES[0]]), tesseract=tesseract)
        assert result.ocr == "unavailable", tesseract
        assert result.ocr_error is not None and result.ocr_error["code"] == "ocr_unavailable"
        assert "tesseract-ocr" in result.ocr_error["message"]
        assert result.document is not None and result.document["pages"][0]["text"] == ""


def test_pages_past_the_page_limit_are_listed(extract: Extract) -> None:
    result = extract(scanned_pdf([SCAN_LINES[0], SCAN_LINES[1], SCAN_LINES[0]]), ocr_max_pages=1)

    doc = result.document
    assert doc is not None and result.ocr == "incomplete"
    assert [p["text_source"] for p in doc["pages"]] == ["ocr", "layer", "layer"]
    assert [p.get("ocr_error") for p in doc["pages"]] == [None, "ocr_page_limit", "ocr_page_limit"]
    assert result.ocr_error is not None
    assert (result.ocr_error["code"], result.ocr_error["details"]) == ("ocr_page_limit", {"pages": [2, 3]})


def test_ocr_time_limit_leaves_the_rest_with_a_code(extract: Extract) -> None:
    result = extract(scanned_pdf([SCAN_LINES[0]] * 3), ocr_time_limit_seconds=0.05)

    doc = result.document
    assert doc is not None and result.ocr == "incomplete"
    assert result.ocr_error is not None and result.ocr_error["code"] == "ocr_time_limit"
    # The first page may squeeze in (a page always gets a second); the last never does.
    assert doc["pages"][2]["ocr_error"] == "ocr_time_limit"
    for page in doc["pages"]:
        assert page["text_source"] == "ocr" or page["ocr_error"] == "ocr_time_limit"


def test_hostile_10000_pixel_scan_is_refused_per_page(extract: Extract) -> None:
    result = extract(huge_scan_pdf())

    assert result.ocr == "incomplete" and result.document is not None
    assert result.document["pages"][0]["ocr_error"] == "ocr_image_too_large"
    assert result.ocr_error is not None and "10000x10000" in result.ocr_error["message"]


def test_hostile_10000_pixel_scan_over_a_raised_pixel_limit_is_a_bomb(extract: Extract) -> None:
    with pytest.raises(FileRejected) as caught:
        extract(huge_scan_pdf(), max_image_pixels=200_000_000)
    assert caught.value.code == "decompression_bomb"  # pypdf's own limit, reading the preview


def test_large_scan_is_rendered_at_a_bounded_size(tmp_path: Path, out_dir: Path) -> None:
    path = tmp_path / "large.pdf"
    path.write_bytes(huge_scan_pdf(6_000))
    limits = ExtractLimits(ocr_mode="always", ocr_max_pixels=4_000_000)

    extraction, stats = run_isolated(path, out_dir, limits)

    assert extraction.ocr == "done" and extraction.document is not None
    page = extraction.document["pages"][0]
    assert (page["text_source"], page["text"], page["ocr_confidence"]) == ("ocr", "", None)
    # PDFium decodes the 36 MP scan once (36 MB); the render and Tesseract stay at 4 MP.
    assert stats.max_rss_kb < limits.memory_limit_mb * 1024


def test_probe_finds_tesseract_and_names_what_is_missing() -> None:
    found = probe(("eng",))
    assert found.available and found.version is not None and "eng" in found.languages

    missing = probe(("eng", "qqq"))
    assert not missing.available and missing.problem is not None and "tesseract-ocr-qqq" in missing.problem

    absent = probe(("eng",), command="no-such-tesseract")
    assert not absent.available and absent.problem is not None and "not installed" in absent.problem


def grey_photo() -> Image.Image:
    """Mid-grey tones everywhere, like a black-and-white photograph (the pipeline bench's photo)."""
    size = (1024, 768)
    gradient = Image.radial_gradient("L").resize(size).convert("RGB")
    return Image.blend(gradient, Image.effect_noise(size, 20).convert("RGB"), 0.2)


def jpeg(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG")
    return Image.open(buf)


@pytest.mark.parametrize(
    ("name", "image", "document"),
    [
        ("scan", written_page(SCAN_LINES[0]), True),
        ("photo of text", Image.open(io.BytesIO(photo_of_text())), True),
        ("blank page", Image.new("L", (800, 1000), 255), False),
        ("black and white halves", corpus.landscape(), False),
        ("colour gradient", Image.merge("RGB", [Image.linear_gradient("L")] * 2 + [Image.new("L", (256, 256))]), False),
        ("dark scene", jpeg(Image.effect_mandelbrot((640, 480), (-2, -1.5, 1, 1.5), 100)), False),
        ("grey gradient under noise", jpeg(grey_photo()), False),
    ],
)
def test_looks_like_document(name: str, image: Image.Image, document: bool) -> None:
    assert looks_like_document(image) is document, name


def test_limits_change_nothing_when_ocr_is_off(tmp_path: Path, out_dir: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pdf([SCAN_LINES[0]]))
    limits = dataclasses.replace(ExtractLimits(isolation=False), ocr_mode="never", tesseract=None)
    result = extract_file(path, out_dir, limits)
    assert result.ocr == "off" and result.ocr_error is None
