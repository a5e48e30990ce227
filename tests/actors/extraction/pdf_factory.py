"""A minimal PDF writer for tests: real text content (Helvetica), metadata, images, filters.

pypdf can only write blank pages, so the test corpus writes its PDFs by hand: a catalog, a
page tree, one content stream per page, an optional image on page 1, a cross-reference
table with exact byte offsets. Streams can be Flate-compressed several times over, which
is also how the tests build decompression bombs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass
class PdfImage:
    """Raw 8-bit pixels to place on a page as an image XObject.

    ``rgb`` holds three bytes a pixel, or one with ``gray``; with ``deflated`` it is already
    Flate-compressed (how a test makes a huge scan without holding its pixels in memory).
    """

    width: int
    height: int
    rgb: bytes
    gray: bool = False
    deflated: bool = False

    def xobject(self) -> bytes:
        """The image XObject's stream object body."""
        colour = b"/DeviceGray" if self.gray else b"/DeviceRGB"
        extra = b" /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s /BitsPerComponent 8" % (
            self.width,
            self.height,
            colour,
        )
        if self.deflated:
            return stream(self.rgb, extra + b" /Filter /FlateDecode")
        return stream(self.rgb, extra, flate_layers=1)


def pdf_string(text: str) -> bytes:
    """A PDF literal string in Latin-1 (enough for Helvetica's standard encoding)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1") + b")"


def stream(data: bytes, extra: bytes = b"", *, flate_layers: int = 0) -> bytes:
    """A stream object body, compressed ``flate_layers`` times (decoded first filter first)."""
    for _ in range(flate_layers):
        data = zlib.compress(data, 9)
    filters = b""
    if flate_layers:
        filters = b" /Filter [" + b" ".join([b"/FlateDecode"] * flate_layers) + b"]"
    head = b"<< /Length " + str(len(data)).encode() + filters + extra + b" >>"
    return head + b"\nstream\n" + data + b"\nendstream"


def ruled_table(x: float, top: float, widths: list[float], rows: list[list[str]], *, row_height: float = 20) -> bytes:
    """Drawing operators of a table with a ruled grid: ``rows`` of cells, ``widths`` of columns.

    ``top`` is the y of the table's upper edge in PDF space (origin bottom left).
    """
    total = sum(widths)
    height = row_height * len(rows)
    ops = [b"0.5 w", b"%g %g %g %g re S" % (x, top - height, total, height)]
    for r in range(1, len(rows)):
        y = top - r * row_height
        ops.append(b"%g %g m %g %g l S" % (x, y, x + total, y))
    edge = x
    for w in widths[:-1]:
        edge += w
        ops.append(b"%g %g m %g %g l S" % (edge, top, edge, top - height))
    for r, row in enumerate(rows):
        left = x
        for w, cell in zip(widths, row, strict=True):
            baseline = top - (r + 1) * row_height + 6
            ops.append(b"BT /F1 10 Tf %g %g Td " % (left + 4, baseline) + pdf_string(cell) + b" Tj ET")
            left += w
    return b"\n".join(ops)


def page_content(lines: list[str], *, with_image: bool = False) -> bytes:
    """Drawing operators: each line of text below the previous, then the image if any."""
    ops = [b"BT /F1 12 Tf 72 720 Td 14 TL"]
    for line in lines:
        ops.append(pdf_string(line) + b" Tj T*")
    ops.append(b"ET")
    if with_image:
        ops.append(b"q 200 0 0 150 72 400 cm /Im1 Do Q")
    return b"\n".join(ops)


def make_pdf(
    pages: list[list[str]],
    *,
    info: dict[str, str] | None = None,
    image: PdfImage | None = None,
    version: str = "1.4",
    flate_layers: int = 0,
    raw_content: dict[int, bytes] | None = None,
    scans: dict[int, PdfImage] | None = None,
    media_box: tuple[float, float] = (612, 792),
) -> bytes:
    """A PDF with one page per entry of ``pages`` (each a list of text lines).

    Parameters:
        info: document information entries without the slash, e.g. ``{"Title": "…"}``.
        image: drawn on page 1 as ``/Im1``.
        flate_layers: how many times each content stream is Flate-compressed.
        raw_content: page index → an already encoded content stream object body, replacing
            the generated one (for bombs and broken streams).
        scans: page index → an image drawn over the whole page after its text, as a scanner
            makes a page (give the page no lines for a page with no text layer).
        media_box: width and height of every page in points.
    """
    objects: dict[int, bytes] = {}
    page_ids = [5 + 2 * i for i in range(len(pages))]
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = b" ".join(b"%d 0 R" % pid for pid in page_ids)
    objects[2] = b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(pages)
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    if info:
        entries = b" ".join(b"/" + key.encode() + b" " + pdf_string(value) for key, value in info.items())
        objects[4] = b"<< " + entries + b" >>"
    image_id = 5 + 2 * len(pages)
    scans = scans or {}
    scan_ids = {index: image_id + 1 + n for n, index in enumerate(sorted(scans))}
    for index, (pid, lines) in enumerate(zip(page_ids, pages, strict=True)):
        resources = b"/Font << /F1 3 0 R >>"
        xobjects = b""
        if image is not None and index == 0:
            xobjects += b" /Im1 %d 0 R" % image_id
        if index in scans:
            xobjects += b" /Scan %d 0 R" % scan_ids[index]
        if xobjects:
            resources += b" /XObject <<" + xobjects + b" >>"
        objects[pid] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Resources << " % media_box
            + resources
            + b" >> /Contents %d 0 R >>" % (pid + 1)
        )
        if raw_content and index in raw_content:
            objects[pid + 1] = raw_content[index]
        else:
            content = page_content(lines, with_image=image is not None and index == 0)
            if index in scans:
                content += b"\nq %g 0 0 %g 0 0 cm /Scan Do Q" % media_box
            objects[pid + 1] = stream(content, flate_layers=flate_layers)
    if image is not None:
        objects[image_id] = image.xobject()
    for index, scan in scans.items():
        objects[scan_ids[index]] = scan.xobject()
    return serialize(objects, version=version, info_id=4 if info else None)


def serialize(objects: dict[int, bytes], *, version: str = "1.4", info_id: int | None = None) -> bytes:
    """Objects numbered 1..N into a file with a correct cross-reference table."""
    out = bytearray(b"%PDF-" + version.encode() + b"\n%\xe2\xe3\xcf\xd3\n")
    size = max(objects) + 1
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        if number in offsets:
            out += b"%010d 00000 n \n" % offsets[number]
        else:
            out += b"0000000000 65535 f \n"
    trailer = b"/Size %d /Root 1 0 R" % size
    if info_id is not None:
        trailer += b" /Info %d 0 R" % info_id
    out += b"trailer\n<< " + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
