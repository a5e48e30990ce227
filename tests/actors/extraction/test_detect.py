"""Type detection goes by magic numbers only."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest
from PIL import Image

from actors.extraction import Detected, detect
from tests.actors.extraction.corpus import encode, png
from tests.actors.extraction.pdf_factory import make_pdf


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "hello")
    return buf.getvalue()


def _image(fmt: str) -> bytes:
    return encode(Image.new("RGB", (8, 8)), fmt)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (make_pdf([["x"]]), Detected("pdf", "application/pdf")),
        (b"junk before the header\n" + make_pdf([["x"]]), Detected("pdf", "application/pdf")),
        (png(10, 10), Detected("image", "image/png")),
        (_image("JPEG"), Detected("image", "image/jpeg")),
        (_image("GIF"), Detected("image", "image/gif")),
        (_image("WEBP"), Detected("image", "image/webp")),
        (_image("TIFF"), Detected("image", "image/tiff")),
        (_image("BMP"), Detected("image", "image/bmp")),
        (_image("ICO"), Detected("image", "image/vnd.microsoft.icon")),
        (_zip(), Detected("other", "application/zip")),
        (gzip.compress(b"hello"), Detected("other", "application/gzip")),
        ("héllo wörld\n".encode(), Detected("other", "text/plain")),
        (b"BMW is a text file that starts with BM", Detected("other", "text/plain")),
        (b"\x00\x01\x02\x03binary", Detected("other", "application/octet-stream")),
        (b"\xff\xfe\xfd not utf-8", Detected("other", "application/octet-stream")),
        (b"", Detected("other", "application/octet-stream")),
    ],
    ids=lambda v: v.mime if isinstance(v, Detected) else None,
)
def test_detect_by_magic_number(data: bytes, expected: Detected) -> None:
    assert detect(data[:4096]) == expected


def test_pdf_header_past_the_first_kib_is_not_a_pdf() -> None:
    assert detect(b" " * 1024 + b"%PDF-1.7\n") == Detected("other", "text/plain")


def test_utf8_character_cut_at_the_end_of_the_head_is_still_text() -> None:
    head = ("a" * 4095 + "é").encode()[:4096]
    assert head[-1:] == b"\xc3"
    assert detect(head) == Detected("other", "text/plain")


def test_png_polyglot_with_a_pdf_header_inside_is_an_image() -> None:
    assert detect(png(10, 10) + b"%PDF-1.4").kind == "image"
