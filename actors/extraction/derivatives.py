"""Writing image derivatives: scaled, re-oriented, converted for JPEG/WebP, without metadata.

Derivatives are served to third parties, so they never carry the source's EXIF, XMP or
comments (GPS position, serial numbers, owner names); only the ICC profile is kept, for colour.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from actors.extraction.limits import ExtractLimits
from actors.extraction.result import Derivative

#: Long side of the ``web`` derivative.
WEB_LONG_SIDE = 2048
#: Encoder quality of the ``web`` derivative: visually clean at about a tenth of the size.
WEB_QUALITY = 82
#: Encoder quality of thumbnails and previews.
THUMB_QUALITY = 80

#: EXIF orientation → the transposition that shows the image upright (as ImageOps.exif_transpose).
_ORIENTATION_FIX: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


@dataclass(frozen=True)
class Target:
    """One derivative to make: its name and the longest side it may have."""

    name: str
    long_side: int
    quality: int = THUMB_QUALITY


def image_targets(limits: ExtractLimits) -> list[Target]:
    """The derivatives of an uploaded image: ``thumb_<N>`` for each size, then ``web``."""
    targets = [Target(f"thumb_{n}", n) for n in limits.thumbnail_sizes]
    targets.append(Target("web", WEB_LONG_SIDE, WEB_QUALITY))
    return targets


def upright(im: Image.Image, orientation: int | None) -> Image.Image:
    """``im`` turned as its EXIF orientation says; done on the reduced image because it is cheaper."""
    method = _ORIENTATION_FIX.get(orientation or 1)
    return im.transpose(method) if method is not None else im


def for_output(im: Image.Image, fmt: str) -> Image.Image:
    """``im`` in a mode ``fmt`` can store: JPEG has no alpha, so transparency goes on white.

    Palette images go to RGBA first: converting them straight to RGB warns about transparency.
    """
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    elif im.mode in _SIXTEEN_BIT_MODES:
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode in ("1", "F"):
        im = im.convert("L")
    if im.mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        if fmt == "WEBP":
            return rgba
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if im.mode == "RGB" or (im.mode == "L" and fmt == "JPEG"):
        return im
    return im.convert("RGB")


def write_scaled(base: Image.Image, targets: list[Target], out_dir: Path, limits: ExtractLimits) -> list[Derivative]:
    """Write one derivative per target from ``base`` (already upright and in an output mode).

    Each target is scaled from the previous, larger one, so a 64-megapixel original is
    resampled once, not once per thumbnail (Pillow's thumbnail: a box reduction, then bicubic).
    Images are never enlarged, so a target no smaller than the image has the same pixels as the
    larger one before it: it shares that one's encoding (a link, at its quality, the higher)
    instead of encoding the same pixels again.
    """
    icc_profile = base.info.get("icc_profile")
    written: dict[str, Derivative] = {}
    current = base
    encoded: Derivative | None = None  # the file already holding ``current``'s pixels
    for target in sorted(targets, key=lambda t: t.long_side, reverse=True):
        if max(current.size) > target.long_side:
            current = current.copy()
            current.thumbnail((target.long_side, target.long_side))
            encoded = None
        if encoded is None:
            encoded = save(current, out_dir, target.name, limits, target.quality, icc_profile)
            written[target.name] = encoded
        else:
            written[target.name] = same_pixels(encoded, out_dir, target.name, limits)
    return [written[t.name] for t in targets]


def same_pixels(encoded: Derivative, out_dir: Path, name: str, limits: ExtractLimits) -> Derivative:
    """Derivative ``name`` as a hard link to ``encoded`` (a copy where links are refused)."""
    path = out_dir / f"{name}.{limits.extension}"
    try:
        os.link(encoded.path, path)
    except OSError:
        shutil.copyfile(encoded.path, path)
    return replace(encoded, name=name, filename=path.name, path=path)


def save(
    im: Image.Image,
    out_dir: Path,
    name: str,
    limits: ExtractLimits,
    quality: int,
    icc_profile: bytes | None = None,
) -> Derivative:
    """Encode ``im`` as ``<out_dir>/<name>.<ext>`` with no metadata but the colour profile."""
    path = out_dir / f"{name}.{limits.extension}"
    im.info = {}
    options: dict[str, object] = {"quality": quality}
    if icc_profile:
        options["icc_profile"] = icc_profile
    im.save(path, format=limits.derivative_format, **options)
    return Derivative(
        name=name,
        filename=path.name,
        content_type=limits.content_type,
        path=path,
        width=im.width,
        height=im.height,
    )
