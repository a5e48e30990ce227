"""Documents for the table and OCR tests, built here: ruled tables, scans, photos of text.

A "scan" is text drawn with Pillow onto a white page image and wrapped as a PDF page with no
text layer, which is what a scanner's PDF is; a "photo" of text is the same writing on a
tinted, slightly turned, blurred and noisy sheet saved as JPEG.
"""

from __future__ import annotations

import io
import zlib
from functools import cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tests.actors.extraction.pdf_factory import PdfImage, make_pdf, page_content, ruled_table, stream

#: Two tables on page 1, none on page 2, one on page 3.
PRICES = [["Item", "Qty", "Price"], ["Apples", "3", "1.20"], ["Pears, ripe", "12", "0.80"], ["Plums", "7", "2.05"]]
PEOPLE = [["Name", "City"], ["Ada", "London"], ["Grace", "Arlington"]]
STOCK = [["Part", "Bin", "Count"], ["Bolt M4", "A-12", "400"], ["Nut M4", "A-13", "385"]]

#: Lines written on the scanned pages (OCR-friendly words a test can look for).
SCAN_LINES = [
    ["QUARTERLY HARBOUR REPORT", "Vessels arrived: 4417", "Cargo handled without delay"],
    ["INVOICE NUMBER 2093", "Payment due within thirty days", "Thank you for your business"],
]

#: Size of a scanned page: US Letter at 150 dpi (what OCR renders it at, so tests stay quick).
SCAN_SIZE = (1275, 1650)


def tables_pdf() -> bytes:
    """Three pages: a title and two ruled tables, then prose, then one more table."""
    first = page_content(["Price list"]) + b"\n" + ruled_table(72, 650, [150, 60, 80], PRICES)
    first += b"\n" + ruled_table(72, 400, [100, 120], PEOPLE)
    third = ruled_table(100, 700, [120, 80, 80], STOCK)
    return make_pdf([[], ["Just prose here, no table."], []], raw_content={0: stream(first), 2: stream(third)})


def written_page(lines: list[str], size: tuple[int, int] = SCAN_SIZE) -> Image.Image:
    """A white grey-scale page with ``lines`` in large black type."""
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=size[0] // 36)
    for n, line in enumerate(lines):
        draw.text((size[0] // 10, size[1] // 10 + n * size[0] // 18), line, fill=0, font=font)
    return page


def scan(im: Image.Image) -> PdfImage:
    return PdfImage(im.width, im.height, im.tobytes(), gray=True)


def scanned_pdf(pages: list[list[str]]) -> bytes:
    """One scanned page (no text layer) per entry of ``pages``."""
    return make_pdf([[] for _ in pages], scans={n: scan(written_page(lines)) for n, lines in enumerate(pages)})


@cache
def mixed_pdf() -> bytes:
    """Text, scan, text, scan: pages 1 and 3 have a text layer, 2 and 4 are images of text."""
    scans = {1: scan(written_page(SCAN_LINES[0])), 3: scan(written_page(SCAN_LINES[1]))}
    return make_pdf([["Typed page one"], [], ["Typed page three"], []], scans=scans)


@cache
def photo_of_text() -> bytes:
    """A JPEG photo of a receipt: tinted paper on a darker desk, turned 3 degrees, blurred, noisy."""
    desk = Image.new("RGB", (1200, 900), (150, 130, 110))
    sheet = written_page(SCAN_LINES[1], (1000, 760)).convert("RGB")
    sheet = Image.eval(sheet, lambda v: 40 + v * 195 // 255)  # ink is not black, paper not white
    desk.paste(sheet, (100, 70))
    turned = desk.rotate(3, resample=Image.Resampling.BICUBIC, fillcolor=(120, 100, 80))
    blurred = turned.filter(ImageFilter.GaussianBlur(1.2))
    noisy = Image.blend(blurred, Image.effect_noise(blurred.size, 24).convert("RGB"), 0.08)
    buf = io.BytesIO()
    noisy.save(buf, "JPEG", quality=80)
    return buf.getvalue()


@cache
def huge_scan_pdf(side: int = 10_000) -> bytes:
    """One page whose scan is ``side`` x ``side`` grey pixels (100 MP), ~100 KB compressed."""
    packer = zlib.compressobj(9)
    row = b"\xff" * side
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    image = PdfImage(side, side, data, gray=True, deflated=True)
    return make_pdf([[]], scans={0: image}, media_box=(2400, 2400))


def words(text: str) -> set[str]:
    return set(text.upper().replace(":", " ").split())
