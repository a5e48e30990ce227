"""ExtractLimits: built from the settings, validated, and the JSON form of a result."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.extraction import Derivative, Extraction, ExtractLimits
from models.settings import Settings


def test_limits_from_settings() -> None:
    settings = Settings.from_env(
        {
            "CHUTE_THUMBNAIL_SIZES": "128,512",
            "CHUTE_DERIVATIVE_FORMAT": "webp",
            "CHUTE_MAX_IMAGE_PIXELS": "1000000",
            "CHUTE_MAX_PDF_PAGES": "50",
            "CHUTE_EXTRACT_TIME_LIMIT_SECONDS": "7",
            "CHUTE_EXTRACT_MEMORY_LIMIT_MB": "256",
            "CHUTE_EXTRACT_ISOLATION": "false",
            "CHUTE_KEEP_EXIF_GPS": "true",
            "CHUTE_MAX_TEXT_BYTES_IN_RESULT": "4096",
            "CHUTE_OCR_LANGUAGES": "eng,deu",
            "CHUTE_OCR_DPI": "200",
            "CHUTE_OCR_MAX_PIXELS": "5000000",
            "CHUTE_OCR_MAX_PAGES": "9",
            "CHUTE_OCR_TIME_LIMIT_SECONDS": "11",
            "CHUTE_TABLES_MAX_PAGES": "12",
            "CHUTE_TABLES_TIME_LIMIT_SECONDS": "13",
            "CHUTE_MAX_TABLE_BYTES_IN_RESULT": "2048",
        }
    )

    limits = ExtractLimits.from_settings(settings, ocr_mode="always", tesseract="/opt/tesseract")

    assert limits == ExtractLimits(
        thumbnail_sizes=(128, 512),
        derivative_format="WEBP",
        max_image_pixels=1_000_000,
        max_pdf_pages=50,
        time_limit_seconds=7.0,
        memory_limit_mb=256,
        isolation=False,
        keep_exif_gps=True,
        max_text_bytes_in_result=4096,
        ocr_mode="always",
        tesseract="/opt/tesseract",
        ocr_languages=("eng", "deu"),
        ocr_dpi=200,
        ocr_max_pixels=5_000_000,
        ocr_max_pages=9,
        ocr_time_limit_seconds=11,
        tables_max_pages=12,
        tables_time_limit_seconds=13,
        max_table_bytes_in_result=2048,
    )
    assert limits.total_time_limit_seconds == 7 + 11 + 13


def test_default_settings_give_default_limits() -> None:
    assert ExtractLimits.from_settings(Settings(), tesseract="tesseract") == ExtractLimits()


@pytest.mark.parametrize(
    "overrides",
    [
        {"derivative_format": "PNG"},
        {"thumbnail_sizes": (256, 0)},
        {"time_limit_seconds": 0},
        {"memory_limit_mb": -1},
        {"max_image_pixels": 0},
        {"ocr_mode": "sometimes"},
        {"ocr_languages": ()},
        {"ocr_dpi": 0},
        {"ocr_max_pixels": 0},
        {"ocr_time_limit_seconds": 0},
        {"tables_time_limit_seconds": -1},
    ],
)
def test_invalid_limits_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ExtractLimits(**overrides)  # type: ignore[arg-type]


def test_format_decides_extension_and_content_type() -> None:
    assert (ExtractLimits().extension, ExtractLimits().content_type) == ("jpg", "image/jpeg")
    webp = ExtractLimits(derivative_format="webp")
    assert (webp.derivative_format, webp.extension, webp.content_type) == ("WEBP", "webp", "image/webp")


def test_extraction_round_trips_through_json(tmp_path: Path) -> None:
    extraction = Extraction(
        kind="pdf",
        mime="application/pdf",
        document={"page_count": 1, "pages": [{"number": 1, "text": "hi", "text_source": "ocr", "ocr_confidence": 9.5}]},
        derivatives=[
            Derivative("text", "text.txt", "text/plain; charset=utf-8", tmp_path / "text.txt"),
            Derivative("preview", "preview.jpg", "image/jpeg", tmp_path / "preview.jpg", 10, 20),
        ],
        ocr="incomplete",
        ocr_error={"code": "ocr_page_limit", "message": "m", "details": {"pages": [2]}},
    )

    data = extraction.to_json()

    assert data["derivatives"][1] == {
        "name": "preview",
        "filename": "preview.jpg",
        "content_type": "image/jpeg",
        "path": str(tmp_path / "preview.jpg"),
        "width": 10,
        "height": 20,
    }
    assert Extraction.from_json(data) == extraction
    assert extraction.derivative("preview") is extraction.derivatives[1]
    assert extraction.derivative("thumb_256") is None
