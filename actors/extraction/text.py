"""The ``text`` derivative (``text.txt``) and the page text kept in the result.

Text is written to disk first, one page at a time, pages separated by a form feed as
pdftotext does; OCR text then replaces the pages it read; last, the result gets each page's
text up to :attr:`ExtractLimits.max_text_bytes_in_result`. Only one page's text is ever in
memory, so a 2,000-page book costs its largest page, not its length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actors.extraction.limits import ExtractLimits
from actors.extraction.result import Derivative

if TYPE_CHECKING:
    from actors.extraction.ocr import OcrOutcome

#: Form feed between pages in ``text.txt``, so pages can be split again.
PAGE_SEPARATOR = "\f"

#: File name and content type of the ``text`` derivative.
TEXT_FILE = "text.txt"
TEXT_TYPE = "text/plain; charset=utf-8"

#: Characters read at a time when splitting ``text.txt`` back into pages.
READ_CHARS = 1 << 16


def clean(text: str) -> str:
    """Text that JSON, UTF-8 files and PostgreSQL all accept: no NULs, no lone surrogates."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def page_text(text: str) -> str:
    """A page's text as it goes into ``text.txt``: clean, and without the page separator."""
    return clean(text).replace(PAGE_SEPARATOR, "\n")


def finish_document(
    out_dir: Path, document: dict[str, Any], ocr: OcrOutcome, limits: ExtractLimits
) -> list[Derivative]:
    """Put OCR's pages into ``text.txt`` and the result's pages; apply the result's text budget.

    ``document["pages"]`` holds ``{number}`` per page on entry; on return each page has
    ``text`` (empty past the budget), ``text_source`` (``layer`` or ``ocr``),
    ``ocr_confidence`` and, for a page OCR should have read but did not, ``ocr_error``.
    Returns the ``text`` derivative, or nothing when no page has any text.
    """
    path = out_dir / TEXT_FILE
    if ocr.texts:
        _merge(path, ocr, len(document["pages"]))
    budget = limits.max_text_bytes_in_result
    has_text = False
    texts = _pages(path) if path.exists() else iter(())
    for page in document["pages"]:
        number = page["number"]
        text = next(texts, "")
        has_text = has_text or bool(text.strip())
        read = ocr.texts.get(number)
        page["text_source"] = "ocr" if read is not None else "layer"
        page["ocr_confidence"] = read.confidence if read is not None else None
        if number in ocr.skipped:
            page["ocr_error"] = ocr.skipped[number][0]
        size = len(text.encode("utf-8"))
        if not document["text_truncated"] and size <= budget:
            budget -= size
        else:
            document["text_truncated"] = True
            text = ""
        page["text"] = text
    if not has_text:
        path.unlink(missing_ok=True)
        return []
    return [Derivative(name="text", filename=TEXT_FILE, content_type=TEXT_TYPE, path=path)]


def finish_image(out_dir: Path, info: dict[str, Any], ocr: OcrOutcome, limits: ExtractLimits) -> list[Derivative]:
    """Record an image's OCR text in ``info`` (within the budget) and as the ``text`` derivative."""
    read = ocr.texts.get(1)
    info["text_source"] = "ocr" if read is not None else None
    info["ocr_confidence"] = read.confidence if read is not None else None
    info["text"] = ""
    info["text_truncated"] = False
    if read is None or not read.text.strip():
        return []
    path = out_dir / TEXT_FILE
    path.write_text(page_text(read.text), encoding="utf-8")
    if len(read.text.encode("utf-8")) <= limits.max_text_bytes_in_result:
        info["text"] = read.text
    else:
        info["text_truncated"] = True
    return [Derivative(name="text", filename=TEXT_FILE, content_type=TEXT_TYPE, path=path)]


def _merge(path: Path, ocr: OcrOutcome, page_count: int) -> None:
    """Rewrite ``text.txt`` with OCR's text in place of the pages it read."""
    merged = path.with_name(TEXT_FILE + ".ocr")
    layer = _pages(path) if path.exists() else iter(())
    with open(merged, "w", encoding="utf-8", newline="") as out:
        for number in range(1, page_count + 1):
            text = next(layer, "")
            if number > 1:
                out.write(PAGE_SEPARATOR)
            read = ocr.texts.get(number)
            out.write(page_text(read.text) if read is not None else text)
    os.replace(merged, path)


def _pages(path: Path) -> Iterator[str]:
    """The pages of ``text.txt``, read a block at a time."""
    with open(path, encoding="utf-8", newline="") as fh:
        parts: list[str] = []
        while block := fh.read(READ_CHARS):
            *complete, rest = block.split(PAGE_SEPARATOR)
            for piece in complete:
                parts.append(piece)
                yield "".join(parts)
                parts = []
            parts.append(rest)
        yield "".join(parts)
