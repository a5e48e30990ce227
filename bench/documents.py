"""Inputs of the table and OCR benchmarks, made in memory: ruled-table pages and scanned pages.

A scan is text drawn with Pillow on a white US Letter page at 150 dpi (the resolution OCR
renders a scan at), stored as a Flate-compressed grey image that fills a page with no text
layer, as a scanner writes it.
"""

from __future__ import annotations

import zlib

from PIL import Image, ImageDraw, ImageFont

#: Lines of text on a scanned page, and rows of each ruled table.
SCAN_LINES = 12
TABLE_ROWS = 12

#: A scanned page: US Letter at 150 dpi.
SCAN_SIZE = (1275, 1650)

_TEXT = "The harbour office counted vessels, cargo and delays for the quarterly report"


def serialize(objects: list[bytes]) -> bytes:
    """Objects numbered 1..N into a PDF with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(data)
    return b"<< /Length %d /Filter /FlateDecode%s >>\nstream\n%s\nendstream" % (len(packed), extra, packed)


def _pdf(pages: list[tuple[bytes, bytes]], tail: list[bytes] | None = None) -> bytes:
    """``pages``: (content stream, resources) each; font /F1 is Helvetica. ``tail``: more objects,
    numbered from ``4 + 2 * len(pages)``."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for content, resources in pages:
        page_id = len(objects) + 1
        kids.append(b"%d 0 R" % page_id)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> %s >>"
            b" /Contents %d 0 R >>" % (resources, page_id + 1)
        )
        objects.append(_stream(content))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % len(pages)
    return serialize(objects + (tail or []))


def table_page(number: int) -> bytes:
    """Drawing operators of a page with a title and one ruled table of three columns."""
    widths, row_height, left, top = (160, 120, 120), 20, 72, 700
    height = row_height * (TABLE_ROWS + 1)
    ops = [b"BT /F1 14 Tf 72 740 Td (Report page %d) Tj ET" % number, b"0.5 w"]
    ops.append(b"%d %d %d %d re S" % (left, top - height, sum(widths), height))
    for row in range(1, TABLE_ROWS + 1):
        ops.append(b"%d %d m %d %d l S" % (left, top - row * row_height, left + sum(widths), top - row * row_height))
    edge = left
    for width in widths[:-1]:
        edge += width
        ops.append(b"%d %d m %d %d l S" % (edge, top, edge, top - height))
    for row in range(TABLE_ROWS + 1):
        cells = ("Item", "Quantity", "Price")
        if row:
            cells = (f"Part {number}-{row}", str(row * 7), f"{row * 1.25:.2f}")
        x = left
        for width, cell in zip(widths, cells, strict=True):
            ops.append(b"BT /F1 10 Tf %d %d Td (%s) Tj ET" % (x + 4, top - (row + 1) * row_height + 6, cell.encode()))
            x += width
    return b"\n".join(ops)


def make_tables(pages: int) -> bytes:
    """A PDF of ``pages`` pages, each with one ruled table."""
    return _pdf([(table_page(n), b"") for n in range(1, pages + 1)])


def scan_image(number: int) -> Image.Image:
    """A page of typed text as a scanner sees it: grey pixels, no text layer."""
    page = Image.new("L", SCAN_SIZE, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=28)
    for line in range(SCAN_LINES):
        draw.text((110, 120 + line * 56), f"{number}.{line} {_TEXT}"[:60], fill=0, font=font)
    return page


def make_scans(pages: int) -> bytes:
    """A PDF of ``pages`` scanned pages."""
    first_image = 4 + 2 * pages
    images, contents = [], []
    for number in range(1, pages + 1):
        im = scan_image(number)
        images.append(_stream(im.tobytes(), b" /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace"
                                             b" /DeviceGray /BitsPerComponent 8" % im.size))  # fmt: skip
        resources = b"/XObject << /Scan %d 0 R >>" % (first_image + number - 1)
        contents.append((b"q 612 0 0 792 0 0 cm /Scan Do Q", resources))
    return _pdf(contents, images)
