"""URL converters for chute's ids: a path whose id has the wrong shape matches no route (404).

An id is its prefix and 24 hex digits (``models.ids``). Checking the shape in the route means a
NUL byte, a 10 KB string or ``../`` in an id never reaches the database, and the OpenAPI document
states each id's pattern (``web.openapi`` reads :data:`PATTERNS`).
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import BaseConverter, ValidationError

from models.upload import MAX_CHUNKS


class JobIdConverter(BaseConverter):
    """``job_`` and 24 lower-case hex digits."""

    regex = r"job_[0-9a-f]{24}"


class UploadIdConverter(BaseConverter):
    """``upl_`` and 24 lower-case hex digits."""

    regex = r"upl_[0-9a-f]{24}"


class ChunkIndexConverter(BaseConverter):
    """A chunk index: ASCII digits below ``MAX_CHUNKS`` (Werkzeug's ``int`` takes any Unicode digit
    and any length, and Python refuses to convert more than 4300 digits)."""

    regex = r"[0-9]{1,6}"

    def to_python(self, value: str) -> int:
        index = int(value)
        if index >= MAX_CHUNKS:
            raise ValidationError()
        return index

    def to_url(self, value: int) -> str:
        return str(value)


class NameConverter(BaseConverter):
    """A derivative's name: a lower-case slug (``thumb_256``, ``text``)."""

    regex = r"[a-z0-9][a-z0-9_-]{0,63}"


#: Converter name → (class, the JSON Schema of the path parameter it accepts).
CONVERTERS: dict[str, type[BaseConverter]] = {
    "job_id": JobIdConverter,
    "upload_id": UploadIdConverter,
    "chunk_index": ChunkIndexConverter,
    "name": NameConverter,
}
#: JSON Schema of each converter's parameter, for the OpenAPI document.
SCHEMAS: dict[str, dict[str, object]] = {
    "job_id": {"type": "string", "pattern": f"^{JobIdConverter.regex}$", "examples": ["job_" + "0" * 24]},
    "upload_id": {"type": "string", "pattern": f"^{UploadIdConverter.regex}$", "examples": ["upl_" + "0" * 24]},
    "chunk_index": {"type": "integer", "minimum": 0, "maximum": MAX_CHUNKS - 1},
    "name": {"type": "string", "pattern": f"^{NameConverter.regex}$", "examples": ["thumb_256"]},
}


def register(app: Flask) -> None:
    """Make the converters usable in routes (before any blueprint is registered)."""
    app.url_map.converters.update(CONVERTERS)
