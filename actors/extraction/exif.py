"""EXIF metadata reduced to an allowlist of non-personal tags, as plain JSON.

An allowlist rather than a denylist: cameras and phones invent new tags that hold names,
serial numbers and places, and a tag we did not think of must not leak by default. GPS is
reported only when the operator asks for it (``keep_exif_gps``), and then as decimal degrees.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from PIL import ExifTags, Image, TiffImagePlugin

#: Tags of the main IFD and the Exif sub-IFD that describe the picture, not the person.
ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "Make",
        "Model",
        "Orientation",
        "XResolution",
        "YResolution",
        "ResolutionUnit",
        "Software",
        "DateTime",
        "DateTimeOriginal",
        "DateTimeDigitized",
        "OffsetTime",
        "OffsetTimeOriginal",
        "OffsetTimeDigitized",
        "ExposureTime",
        "FNumber",
        "ExposureProgram",
        "ISOSpeedRatings",
        "ShutterSpeedValue",
        "ApertureValue",
        "BrightnessValue",
        "ExposureBiasValue",
        "MaxApertureValue",
        "MeteringMode",
        "LightSource",
        "Flash",
        "FocalLength",
        "FocalLengthIn35mmFilm",
        "ColorSpace",
        "ExifImageWidth",
        "ExifImageHeight",
        "ExposureMode",
        "WhiteBalance",
        "DigitalZoomRatio",
        "SceneCaptureType",
        "Contrast",
        "Saturation",
        "Sharpness",
        "LensMake",
        "LensModel",
        "LensSpecification",
    }
)

#: Longest string value reported; EXIF strings are short unless someone hides data in them.
MAX_STRING = 256

#: Exceptions Pillow raises on malformed EXIF blocks (and warnings turned into errors).
EXIF_ERRORS = (SyntaxError, ValueError, OSError, struct.error, KeyError, IndexError, TypeError, Warning)


def read_exif(im: Image.Image) -> Image.Exif | None:
    """The image's EXIF, or None when it has none or it is unreadable (no reason to reject the image)."""
    try:
        exif = im.getexif()
    except EXIF_ERRORS:
        return None
    return exif if len(exif) else None


def orientation(exif: Image.Exif | None) -> int | None:
    """The EXIF orientation (1–8), if valid."""
    if exif is None:
        return None
    value = exif.get(ExifTags.Base.Orientation)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def exif_summary(exif: Image.Exif | None, *, keep_gps: bool) -> dict[str, Any]:
    """The allowed tags as ``{name: value}``, plus ``gps`` when ``keep_gps`` and it is present."""
    if exif is None:
        return {}
    summary: dict[str, Any] = {}
    try:
        tags: dict[int, Any] = dict(exif)
        tags.update(exif.get_ifd(ExifTags.IFD.Exif))
    except EXIF_ERRORS:
        return {}
    for tag, value in tags.items():
        try:
            name = ExifTags.Base(tag).name
        except ValueError:
            continue
        if name in ALLOWED_TAGS:
            converted = _jsonable(value)
            if converted is not None:
                summary[name] = converted
    if keep_gps:
        gps = _gps(exif)
        if gps:
            summary["gps"] = gps
    return summary


def _gps(exif: Image.Exif) -> dict[str, float] | None:
    """Latitude, longitude (and altitude) in decimal degrees / metres, or None if incomplete."""
    try:
        ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        lat = _degrees(ifd[ExifTags.GPS.GPSLatitude], ifd.get(ExifTags.GPS.GPSLatitudeRef, "N"), "S")
        lon = _degrees(ifd[ExifTags.GPS.GPSLongitude], ifd.get(ExifTags.GPS.GPSLongitudeRef, "E"), "W")
    except (*EXIF_ERRORS, ZeroDivisionError):
        return None
    if lat is None or lon is None:
        return None
    gps: dict[str, float] = {"latitude": lat, "longitude": lon}
    altitude = _number(ifd.get(ExifTags.GPS.GPSAltitude))
    if altitude is not None:
        below_sea = ifd.get(ExifTags.GPS.GPSAltitudeRef) in (1, b"\x01")
        gps["altitude"] = -altitude if below_sea else altitude
    return gps


def _degrees(dms: Any, ref: Any, negative_ref: str) -> float | None:
    parts = [_number(v) for v in dms] if isinstance(dms, tuple | list) else []
    if len(parts) != 3 or any(p is None for p in parts):
        return None
    degrees, minutes, seconds = (float(p) for p in parts if p is not None)
    value = degrees + minutes / 60 + seconds / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return round(-value if str(ref).strip().upper() == negative_ref else value, 7)


def _number(value: Any) -> float | None:
    if isinstance(value, TiffImagePlugin.IFDRational | int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _jsonable(value: Any) -> Any:
    """EXIF values as JSON: rationals as floats, bytes as text; anything odd is dropped (None)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, TiffImagePlugin.IFDRational | float):
        return _number(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value.replace("\x00", "").strip()[:MAX_STRING]
    if isinstance(value, tuple | list) and len(value) <= 16:
        items = [_jsonable(v) for v in value]
        return items if all(v is not None for v in items) else None
    return None
