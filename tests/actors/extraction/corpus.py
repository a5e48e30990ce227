"""Image files for the extraction tests, built in memory: good ones and hostile ones.

No binary fixtures are committed; every file is made here from a few parameters, so each
test says exactly what is in the file it feeds to the extractor.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

from PIL import ExifTags, Image
from pypdf import PdfReader, PdfWriter

from tests.actors.extraction.pdf_factory import PdfImage, make_pdf

#: The place and person the EXIF of :func:`personal_exif` gives away.
LATITUDE, LONGITUDE = -33.86, 151.21
ARTIST = "Jane Doe"
SERIAL = "SN-123456789"
XMP_SECRET = b"<x:xmpmeta><exif:GPSLatitude>33,51.6S</exif:GPSLatitude></x:xmpmeta>"


def personal_exif(orientation: int = 6) -> Image.Exif:
    """EXIF with an orientation, camera tags, and personal ones: GPS, artist, serial number."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Acme"
    exif[ExifTags.Base.Model] = "Cam 1"
    exif[ExifTags.Base.Artist] = ARTIST
    exif[ExifTags.Base.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "S",
        ExifTags.GPS.GPSLatitude: (33.0, 51.0, 36.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (151.0, 12.0, 36.0),
    }
    exif[ExifTags.Base.ExifOffset] = {ExifTags.Base.BodySerialNumber: SERIAL, ExifTags.Base.FNumber: 2.8}
    return exif


def landscape(width: int = 400, height: int = 200, mode: str = "RGB") -> Image.Image:
    """A picture whose left half is black and right half white, so orientation shows in pixels."""
    im = Image.new(mode, (width, height), "black" if mode != "RGBA" else (0, 0, 0, 255))
    im.paste("white" if mode != "RGBA" else (255, 255, 255, 255), (width // 2, 0, width, height))
    return im


def encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def photo(fmt: str, *, orientation: int = 6) -> bytes:
    """A 400x200 landscape stored sideways with EXIF orientation (6 = turn 90° clockwise)."""
    options: dict[str, object] = {"exif": personal_exif(orientation)}
    if fmt == "JPEG":
        options["xmp"] = XMP_SECRET
    return encode(landscape(), fmt, **options)


def animated_gif(frames: int = 5) -> bytes:
    colours = ["red", "green", "blue", "yellow", "white", "black"]
    images = [Image.new("RGB", (64, 48), colours[i % len(colours)]) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)


def transparent_png() -> bytes:
    """Fully transparent RGBA: as JPEG it must come out white, not black."""
    return encode(Image.new("RGBA", (300, 300), (0, 0, 0, 0)), "PNG")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 2, idat: bytes = b"") -> bytes:
    """A PNG with any declared size: with an empty IDAT, a bomb costs a few bytes to make."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def bilevel_png(side: int) -> bytes:
    """A black square of 1-bit pixels: tiny on disk, ``side``² bytes once decoded by Pillow."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    return png(side, side, bit_depth=1, colour_type=0, idat=zlib.compress(row * side, 6))


# --- PDFs ---------------------------------------------------------------------------------

BOOK_INFO = {
    "Title": "A (small) book",
    "Author": "Ada Lovelace",
    "Subject": "Engines",
    "Creator": "pdf_factory",
    "Producer": "chute tests",
    "CreationDate": "D:20240102030405+01'00'",
    "ModDate": "D:20240203040506Z",
}
#: ``BOOK_INFO`` as extraction reports it (dates normalised to ISO 8601).
BOOK_METADATA = {
    "title": "A (small) book",
    "author": "Ada Lovelace",
    "subject": "Engines",
    "creator": "pdf_factory",
    "producer": "chute tests",
    "created": "2024-01-02T03:04:05+01:00",
    "modified": "2024-02-03T04:05:06+00:00",
}
BOOK_PAGES = [["Chapter one", "It was a dark night."], ["Chapter two"], ["The end (really)"]]


@cache
def book() -> bytes:
    """Three pages of text with full document info, PDF 1.5."""
    return make_pdf(BOOK_PAGES, info=BOOK_INFO, version="1.5")


@cache
def encrypted(user_password: str, algorithm: str) -> bytes:
    """``book()`` encrypted; an empty user password still opens it."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(book())))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def gradient(width: int, height: int) -> PdfImage:
    """Red rising left to right: a preview whose pixels show it is the page's picture."""
    row = b"".join(bytes((x * 255 // (width - 1), 0, 64)) for x in range(width))
    return PdfImage(width, height, row * height)
