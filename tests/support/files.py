"""Sample files the pipeline tests send: a multi-page PDF with text, a JPEG, a corrupt PDF."""

from __future__ import annotations

import io

from PIL import Image

from tests.actors.extraction.pdf_factory import make_pdf

#: Words on each page of the sample PDF, checked in the extracted text.
PDF_PAGES = [[f"Page {n} of the chute sample", f"marker-{n}-{'x' * 20}"] for n in range(1, 6)]


def sample_pdf(pages: int = 5) -> bytes:
    return make_pdf(
        PDF_PAGES[:pages], info={"Title": "chute sample", "Author": "QA", "CreationDate": "D:20240131120000Z"}
    )


def sample_jpeg(width: int = 640, height: int = 480) -> bytes:
    image = Image.new("RGB", (width, height))
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            image.putpixel((x, y), ((x * 3) % 256, (y * 5) % 256, 128))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def corrupt_pdf() -> bytes:
    """A PDF header followed by garbage: detected as a PDF, unreadable as one."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF"
