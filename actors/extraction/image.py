"""Image extraction with Pillow: what the image is, and its thumbnails and web variant.

Only the decoders of the formats we accept are exposed to the input (``formats=``), the
pixel count is checked against :attr:`ExtractLimits.max_image_pixels` before any pixel is
decoded, and decoding errors become :class:`FileRejected` with a specific code.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

from actors.extraction.derivatives import for_output, image_targets, upright, write_scaled
from actors.extraction.exif import exif_summary, orientation, read_exif
from actors.extraction.limits import ExtractLimits
from actors.extraction.ocr import ocr_image
from actors.extraction.raster import image_for_ocr
from actors.extraction.result import Extraction
from actors.extraction.text import finish_image
from models.errors import FileRejected

#: The Pillow decoders that ever see uploaded bytes; :func:`actors.extraction.detect` admits the same.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP", "ICO")

#: Formats whose frames are an animation (a multi-frame TIFF is a stack of pages).
ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP"})

#: What Pillow raises on truncated or malformed input (warnings too, when filters make them errors).
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    Warning,
)

#: Pillow's own bomb signals: the error above twice its global limit, the warning above it.
BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def extract_image(path: Path, out_dir: Path, limits: ExtractLimits, mime: str) -> Extraction:
    """Describe the image at ``path``, write its derivatives into ``out_dir``, and OCR it if it
    looks like a document (or the upload asked ``ocr: always``).

    Raises:
        FileRejected: ``decompression_bomb`` over the pixel limit, ``corrupt_file`` when
            Pillow cannot decode it.
    """
    with open(path, "rb") as fh:
        im = _open(fh)
        with im:
            _check_pixels(im.size, limits)
            exif = read_exif(im)
            try:
                frames = int(getattr(im, "n_frames", 1))
                im.seek(0)
            except BOMB_ERRORS as exc:
                raise _bomb(exc) from None
            except DECODE_ERRORS as exc:
                raise FileRejected(f"corrupt image: {exc}", code="corrupt_file") from None
            info: dict[str, Any] = {
                "format": im.format,
                "width": im.width,
                "height": im.height,
                "mode": im.mode,
                "frames": frames,
                "animated": frames > 1 and im.format in ANIMATED_FORMATS,
                "exif": exif_summary(exif, keep_gps=limits.keep_exif_gps),
            }
            base = _decode_reduced(im, limits)
            base = upright(base, orientation(exif))
            base = for_output(base, limits.derivative_format)
            derivatives = write_scaled(base, image_targets(limits), out_dir, limits)
            # While ``base`` is open: most photos are found not to need OCR from it.
            ocr = ocr_image(lambda: _pixels_for_ocr(path, orientation(exif), limits), limits, preview=lambda: base)
    derivatives += finish_image(out_dir, info, ocr, limits)
    return Extraction(
        kind="image", mime=mime, image=info, derivatives=derivatives, ocr=ocr.status, ocr_error=ocr.error()
    )


def _pixels_for_ocr(path: Path, turn: int | None, limits: ExtractLimits) -> Image.Image:
    """The image decoded again, for OCR: at up to ``ocr_max_pixels``, not the thumbnails' 2,048 px."""
    with open(path, "rb") as fh, _open(fh) as im:
        try:
            return image_for_ocr(im, turn, limits)
        except BOMB_ERRORS as exc:
            raise _bomb(exc) from None
        except DECODE_ERRORS as exc:
            raise FileRejected(f"corrupt image: {exc}", code="corrupt_file") from None


def _open(fh: Any) -> Image.Image:
    try:
        return Image.open(fh, formats=ALLOWED_FORMATS)
    except BOMB_ERRORS as exc:
        raise _bomb(exc) from None
    except DECODE_ERRORS as exc:
        raise FileRejected(f"not a readable image: {exc}", code="corrupt_file") from None


def _check_pixels(size: tuple[int, int], limits: ExtractLimits) -> None:
    """Reject by declared size, before decoding: Pillow's global limit is not ours to change here."""
    pixels = size[0] * size[1]
    if pixels > limits.max_image_pixels:
        raise FileRejected(
            f"image of {size[0]}x{size[1]} pixels is over the limit of {limits.max_image_pixels}",
            code="decompression_bomb",
            details={"width": size[0], "height": size[1], "max_pixels": limits.max_image_pixels},
        )


def _bomb(exc: BaseException) -> FileRejected:
    return FileRejected(f"decompression bomb: {exc}", code="decompression_bomb")


def _decode_reduced(im: Image.Image, limits: ExtractLimits) -> Image.Image:
    """Decode the first frame, reduced to the largest derivative's size.

    JPEG decodes at 1/2, 1/4 or 1/8 scale when asked (``draft``), which makes a thumbnail of
    a large photo several times cheaper. Palette and bilevel images are converted before
    resampling, since Pillow resizes those with nearest-neighbour only.
    """
    largest = max(t.long_side for t in image_targets(limits))
    try:
        if im.format == "JPEG" and max(im.size) > largest:
            scale = largest / max(im.size)
            im.draft(None, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
        im.load()
        _check_pixels(im.size, limits)
        base = im
        if base.mode in ("P", "PA", "1"):
            base = for_output(base, limits.derivative_format)
        if max(base.size) > largest:
            base.thumbnail((largest, largest))
        return base
    except BOMB_ERRORS as exc:
        raise _bomb(exc) from None
    except DECODE_ERRORS as exc:
        raise FileRejected(f"corrupt image: {exc}", code="corrupt_file") from None
