"""What an extraction produces, and its plain-JSON form for crossing a process boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Derivative:
    """A file made from the upload (thumbnail, web image, full text), written inside ``out_dir``.

    Derivatives live on disk, never in memory, so a 500-page book's text does not sit in RAM.
    """

    name: str
    filename: str
    content_type: str
    path: Path
    width: int | None = None
    height: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filename": self.filename,
            "content_type": self.content_type,
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Derivative:
        return cls(
            name=str(data["name"]),
            filename=str(data["filename"]),
            content_type=str(data["content_type"]),
            path=Path(data["path"]),
            width=_optional_int(data.get("width")),
            height=_optional_int(data.get("height")),
        )


@dataclass
class Extraction:
    """The result of extracting one file.

    ``document`` is set for PDFs: ``{page_count, version, encrypted, locked, metadata: {title,
    author, subject, creator, producer, created, modified}, pages: [{number, text, text_source,
    ocr_confidence, ocr_error?}], text_truncated, unreadable_pages, tables: [{page, index, bbox,
    header, rows, row_count, csv}], tables_truncated, tables_error}``. ``image`` is set for
    images: ``{format, width, height, mode, frames, animated, exif, text, text_source,
    ocr_confidence, text_truncated}``. Other files carry only their ``kind`` and ``mime``.

    ``ocr`` (PDFs and images) is ``done``, ``not_needed``, ``off``, ``unavailable`` or
    ``incomplete``; ``ocr_error`` says why for the last two.
    """

    kind: str
    mime: str
    document: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    derivatives: list[Derivative] = field(default_factory=list)
    ocr: str | None = None
    ocr_error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (paths as strings), e.g. to pass across a process boundary."""
        return {
            "kind": self.kind,
            "mime": self.mime,
            "document": self.document,
            "image": self.image,
            "derivatives": [d.to_json() for d in self.derivatives],
            "ocr": self.ocr,
            "ocr_error": self.ocr_error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Extraction:
        """The inverse of :meth:`to_json`."""
        return cls(
            kind=str(data["kind"]),
            mime=str(data["mime"]),
            document=data.get("document"),
            image=data.get("image"),
            derivatives=[Derivative.from_json(d) for d in data.get("derivatives") or ()],
            ocr=None if data.get("ocr") is None else str(data["ocr"]),
            ocr_error=data.get("ocr_error"),
        )

    def derivative(self, name: str) -> Derivative | None:
        """The derivative called ``name``, if there is one."""
        return next((d for d in self.derivatives if d.name == name), None)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
