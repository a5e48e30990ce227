"""File type detection from magic numbers.

The client's filename and declared content type are never trusted: a PNG uploaded as
``report.pdf`` is an image. Detection only looks at the first bytes of the file.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass
from typing import Literal

#: How many leading bytes callers should pass to :func:`detect`.
HEAD_BYTES = 4096

#: A PDF header may follow some junk; readers accept it within the first KiB.
PDF_HEADER_WINDOW = 1024

Kind = Literal["pdf", "image", "other"]

#: Signatures at offset 0 that are specific enough to win over anything else.
_STRONG_SIGNATURES: tuple[tuple[bytes, Kind, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image", "image/png"),
    (b"\xff\xd8\xff", "image", "image/jpeg"),
    (b"GIF87a", "image", "image/gif"),
    (b"GIF89a", "image", "image/gif"),
    (b"II*\x00", "image", "image/tiff"),
    (b"MM\x00*", "image", "image/tiff"),
    (b"PK\x03\x04", "other", "application/zip"),
    (b"PK\x05\x06", "other", "application/zip"),
    (b"PK\x07\x08", "other", "application/zip"),
    (b"\x1f\x8b", "other", "application/gzip"),
)

#: Sizes of the BMP info headers Pillow understands (core, v2..v5).
_BMP_DIB_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})


@dataclass(frozen=True)
class Detected:
    """What the bytes say a file is: a coarse ``kind`` that picks the extractor, and a MIME type."""

    kind: Kind
    mime: str


def detect(head: bytes) -> Detected:
    """Detect a file's type from its first bytes.

    Parameters:
        head: at least :data:`HEAD_BYTES` leading bytes, or the whole file when smaller.

    Returns:
        ``pdf`` for PDFs, ``image`` for the raster formats we extract (PNG, JPEG, GIF, WebP,
        TIFF, BMP, ICO), else ``other`` with the best MIME type we can name.
    """
    if head.startswith(b"%PDF-"):
        return Detected("pdf", "application/pdf")
    for signature, kind, mime in _STRONG_SIGNATURES:
        if head.startswith(signature):
            return Detected(kind, mime)
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Detected("image", "image/webp")
    if b"%PDF-" in head[:PDF_HEADER_WINDOW]:
        return Detected("pdf", "application/pdf")
    if _is_bmp(head):
        return Detected("image", "image/bmp")
    if _is_ico(head):
        return Detected("image", "image/vnd.microsoft.icon")
    if head and _is_utf8_text(head):
        return Detected("other", "text/plain")
    return Detected("other", "application/octet-stream")


def _is_bmp(head: bytes) -> bool:
    """``BM`` alone is too weak (plenty of text starts with it): also check the DIB header size."""
    if len(head) < 18 or head[:2] != b"BM":
        return False
    (dib_size,) = struct.unpack_from("<I", head, 14)
    return dib_size in _BMP_DIB_HEADER_SIZES


def _is_ico(head: bytes) -> bool:
    """ICO's magic is four bytes of mostly zeros: require a sane image count and directory entry."""
    if len(head) < 22 or head[:4] != b"\x00\x00\x01\x00":
        return False
    (count,) = struct.unpack_from("<H", head, 4)
    reserved = head[6 + 3]
    return 1 <= count <= 256 and reserved == 0


def _is_utf8_text(head: bytes) -> bool:
    """Valid UTF-8 without NULs; a multi-byte character cut at the end of ``head`` is fine."""
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True
