"""Pixels for OCR: PDF pages rendered by PDFium (pypdfium2), uploaded images decoded by Pillow.

Both come out in 8-bit grey at a bounded pixel count (:attr:`ExtractLimits.ocr_max_pixels`),
which is what bounds Tesseract's memory and time. PDFium is the renderer Chrome ships, and
pypdfium2's wheels carry its binary, so there is nothing to install beside the package; it
renders what pypdf cannot (fonts, vector art, JBIG2 and JPX scans), and it renders at any
scale in one call. Images drawn on a page are checked against the same pixel limit as
uploaded images *before* rendering, since PDFium decodes an image whole whatever the scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from actors.extraction.derivatives import for_output, upright
from actors.extraction.limits import ExtractLimits

#: Points per inch: PDF page sizes are in points.
POINTS_PER_INCH = 72

#: How deep to look into nested form XObjects for images to check (PDFium's own default).
MAX_FORM_DEPTH = 15

#: A scanned page is rendered at its scan's own resolution (up to ``ocr_dpi``), since more
#: pixels than the scanner took add only time; but never below this, where Tesseract's
#: accuracy drops (it wants letters 20 pixels or more high).
MIN_SCAN_DPI = 150


class RasterError(Exception):
    """A page or image that cannot be turned into pixels for OCR; ``code`` says why."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def open_pdf(path: Path) -> Iterator[pdfium.PdfDocument]:
    """The PDF at ``path`` opened with PDFium (an empty user password opens it if encrypted).

    Raises:
        RasterError: ``ocr_render_failed`` when PDFium cannot open it.
    """
    try:
        document = pdfium.PdfDocument(path, password="")
    except pdfium.PdfiumError as exc:
        raise RasterError(f"PDFium cannot open the PDF: {exc}", "ocr_render_failed") from None
    try:
        yield document
    finally:
        document.close()


def render_page(document: pdfium.PdfDocument, number: int, limits: ExtractLimits) -> Image.Image:
    """Page ``number`` (1-based) in grey at ``ocr_dpi``, scaled down to ``ocr_max_pixels``.

    Raises:
        RasterError: ``ocr_image_too_large`` when the page draws an image over
            ``max_image_pixels``; ``ocr_render_failed`` when PDFium cannot render it.
    """
    try:
        page = document[number - 1]
    except (pdfium.PdfiumError, IndexError) as exc:
        raise RasterError(f"PDFium cannot load page {number}: {exc}", "ocr_render_failed") from None
    try:
        scan_dpi = _scan_dpi(page, number, limits)
        width, height = page.get_size()
        if not (width > 0 and height > 0):
            raise RasterError(f"page {number} has no area", "ocr_render_failed")
        dpi = limits.ocr_dpi if scan_dpi is None else max(min(scan_dpi, limits.ocr_dpi), MIN_SCAN_DPI)
        scale = min(dpi / POINTS_PER_INCH, math.sqrt(limits.ocr_max_pixels / (width * height)))
        bitmap = page.render(scale=scale, grayscale=True)
        # A copy: the PIL image would otherwise point into the bitmap's buffer, freed with it.
        return bitmap.to_pil().convert("L").copy()
    except pdfium.PdfiumError as exc:
        raise RasterError(f"PDFium cannot render page {number}: {exc}", "ocr_render_failed") from None
    finally:
        page.close()


def _scan_dpi(page: pdfium.PdfPage, number: int, limits: ExtractLimits) -> float | None:
    """The resolution of the densest image the page draws (None: no image), after checking
    every image against the pixel limit."""
    dpi = None
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=MAX_FORM_DEPTH):
        try:
            width, height = obj.get_px_size()
            left, _, right, _ = obj.get_bounds()
        except pdfium.PdfiumError:
            continue
        if width * height > limits.max_image_pixels:
            raise RasterError(
                f"page {number} draws a {width}x{height} image, over the limit of {limits.max_image_pixels} pixels",
                "ocr_image_too_large",
            )
        if right - left > 0:
            dpi = max(dpi or 0.0, width / (right - left) * POINTS_PER_INCH)
    return dpi


def image_for_ocr(im: Image.Image, orientation: int | None, limits: ExtractLimits) -> Image.Image:
    """The first frame of an opened (not yet loaded) image, upright, grey, within ``ocr_max_pixels``.

    JPEG decodes straight at a reduced scale (``draft``) when the original is larger.
    """
    fit = math.sqrt(limits.ocr_max_pixels / (im.width * im.height))
    if fit < 1 and im.format == "JPEG":
        im.draft("L", (math.ceil(im.width * fit), math.ceil(im.height * fit)))
    im.load()
    grey = for_output(im, "JPEG").convert("L")  # transparency onto white, 16-bit down to 8
    fit = math.sqrt(limits.ocr_max_pixels / (grey.width * grey.height))
    if fit < 1:
        grey = grey.resize((max(1, int(grey.width * fit)), max(1, int(grey.height * fit))), Image.Resampling.LANCZOS)
    return upright(grey, orientation)
