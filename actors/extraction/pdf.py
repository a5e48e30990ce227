"""PDF extraction with pypdf: document info, text per page, the full text and a preview; then
tables (:mod:`actors.extraction.tables`) and OCR of pages without text (:mod:`actors.extraction.ocr`).

pypdf bounds its own work on hostile files (decompressed sizes, page tree size and depth,
parsing budgets) and raises :class:`pypdf.errors.LimitReachedError` past them; the child
process limits of :mod:`actors.extraction.sandbox` bound whatever those do not cover.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image
from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import DependencyError, LimitReachedError, PyPdfError
from pypdf.generic import DictionaryObject

from actors.extraction.derivatives import THUMB_QUALITY, for_output, save
from actors.extraction.limits import ExtractLimits
from actors.extraction.malformed import MALFORMED_INPUT_ERRORS
from actors.extraction.ocr import ocr_pdf
from actors.extraction.result import Derivative, Extraction
from actors.extraction.tables import extract_tables
from actors.extraction.text import PAGE_SEPARATOR, TEXT_FILE, clean, finish_document, page_text
from models.errors import FileRejected

logger = logging.getLogger(__name__)

#: What pypdf raises (besides its own errors) when a malformed file trips its parser.
PARSE_ERRORS: tuple[type[BaseException], ...] = (PyPdfError, *MALFORMED_INPUT_ERRORS)

#: Longest metadata string reported; longer values are cut.
MAX_METADATA_CHARS = 1024

_VERSION = re.compile(r"%PDF-(\d+\.\d+)")


def extract_pdf(path: Path, out_dir: Path, limits: ExtractLimits) -> Extraction:
    """Read the PDF at ``path``; write ``text.txt``, the page-1 ``preview`` and one CSV per table
    into ``out_dir``.

    An encrypted PDF whose empty user password does not open it is not an error: it is
    reported with ``locked: true``, its declared page count and no text. Tables and OCR stop
    at their own limits and say so in the result; they never fail the file.

    Raises:
        FileRejected: ``corrupt_file``, ``too_many_pages``, ``decompression_bomb`` (a pypdf
            limit was reached) or ``unsupported_file`` (an encryption pypdf cannot handle).
    """
    preview: Derivative | None = None
    textless: list[int] = []
    with open(path, "rb") as fh:
        with _reading():
            reader = PdfReader(fh, strict=False)
            encrypted = reader.is_encrypted
            locked = encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
            version = _version(reader, locked)
            declared = _declared_page_count(reader)
            _check_page_count(declared, limits)
            if locked:
                document = _document(declared, version, True, True, _empty_metadata())
                document["pages"] = [{"number": n} for n in range(1, (declared or 0) + 1)]
            else:
                pages = reader.pages
                page_count = len(pages)
                _check_page_count(page_count, limits)
                document = _document(page_count, version, encrypted, False, _metadata(reader))
        if not locked:
            textless = _write_text(pages, out_dir, document)
            preview = _preview(pages[0], out_dir, limits) if page_count else None
    tables = [] if locked else extract_tables(path, out_dir, limits, document)
    ocr = ocr_pdf(path, limits, len(document["pages"]), textless)
    derivatives = finish_document(out_dir, document, ocr, limits) + tables
    if preview is not None:
        derivatives.append(preview)
    return Extraction(
        kind="pdf",
        mime="application/pdf",
        document=document,
        derivatives=derivatives,
        ocr=ocr.status,
        ocr_error=ocr.error(),
    )


@contextmanager
def _reading() -> Iterator[None]:
    """Turn pypdf's failures on a malformed file into :class:`FileRejected`, once, here."""
    try:
        yield
    except FileRejected:
        raise
    except LimitReachedError as exc:
        raise FileRejected(f"PDF over a parsing limit: {exc}", code="decompression_bomb") from None
    except (NotImplementedError, DependencyError) as exc:
        raise FileRejected(f"unsupported PDF feature: {exc}", code="unsupported_file") from None
    except PARSE_ERRORS as exc:
        raise FileRejected(f"corrupt PDF: {exc}", code="corrupt_file") from None


def _check_page_count(count: int | None, limits: ExtractLimits) -> None:
    if count is not None and count > limits.max_pdf_pages:
        raise FileRejected(
            f"PDF has {count} pages, more than the limit of {limits.max_pdf_pages}",
            code="too_many_pages",
            details={"page_count": count, "max_pages": limits.max_pdf_pages},
        )


def _declared_page_count(reader: PdfReader) -> int | None:
    """The page tree's ``/Count``, read without flattening the tree (cheap, and possible when locked).

    The page tree holds no strings or streams, so it is readable without the decryption key;
    pypdf guards it anyway, hence the same override it uses while checking passwords. None
    when the count is missing or not a number (flattening the tree will count the pages).
    """
    override = getattr(reader, "_override_encryption", False)
    reader._override_encryption = True
    try:
        root = reader.trailer["/Root"].get_object()
        pages = _resolved(root, "/Pages") if isinstance(root, DictionaryObject) else None
        count = _resolved(pages, "/Count") if isinstance(pages, DictionaryObject) else None
    finally:
        reader._override_encryption = override
    return int(count) if isinstance(count, int) and count >= 0 else None


def _resolved(dictionary: DictionaryObject, key: str) -> Any:
    """``dictionary[key]`` with indirect references followed (``DictionaryObject.get`` does not)."""
    value = dictionary.get(key)
    return value.get_object() if value is not None else None


def _version(reader: PdfReader, locked: bool) -> str | None:
    """The header's version, or the catalog's ``/Version`` when that is later (PDF 1.4+ allows it)."""
    match = _VERSION.match(reader.pdf_header)
    version = match.group(1) if match else None
    if not locked:
        catalog = reader.trailer["/Root"].get_object()
        declared = _resolved(catalog, "/Version") if isinstance(catalog, DictionaryObject) else None
        if declared is not None and re.fullmatch(r"/?\d+\.\d+", str(declared)):
            candidate = str(declared).lstrip("/")
            if version is None or _version_key(candidate) > _version_key(version):
                version = candidate
    return version


def _version_key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def _document(
    page_count: int | None, version: str | None, encrypted: bool, locked: bool, metadata: dict[str, Any]
) -> dict[str, Any]:
    return {
        "page_count": page_count,
        "version": version,
        "encrypted": encrypted,
        "locked": locked,
        "metadata": metadata,
        "pages": [],
        "text_truncated": False,
        "unreadable_pages": [],
        "tables": [],
        "tables_truncated": False,
        "tables_error": None,
    }


def _empty_metadata() -> dict[str, Any]:
    keys = ("title", "author", "subject", "creator", "producer", "created", "modified")
    return dict.fromkeys(keys)


def _metadata(reader: PdfReader) -> dict[str, Any]:
    """Document info with dates as ISO 8601; an unparsable date is None, not an error."""
    metadata = _empty_metadata()
    info = reader.metadata
    if info is None:
        return metadata
    for key in ("title", "author", "subject", "creator", "producer"):
        metadata[key] = _text(getattr(info, key))
    metadata["created"] = _iso(lambda: info.creation_date)
    metadata["modified"] = _iso(lambda: info.modification_date)
    return metadata


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    return clean(value).strip()[:MAX_METADATA_CHARS] or None


def _iso(read: Any) -> str | None:
    try:
        value = read()
    except (ValueError, TypeError, OverflowError):
        return None
    return value.isoformat() if isinstance(value, datetime) else None


def _write_text(pages: Any, out_dir: Path, document: dict[str, Any]) -> list[int]:
    """Stream each page's text layer to ``text.txt``; return the pages that have none.

    Only one page's text is in memory at a time; :func:`finish_document` later puts it in
    the result. A page whose text pypdf cannot extract (broken or unsupported stream) is
    listed in ``unreadable_pages`` with empty text, rather than failing a whole book for one
    page; a pypdf limit still rejects the file.
    """
    textless = []
    with open(out_dir / TEXT_FILE, "w", encoding="utf-8", newline="") as out:
        for number in range(1, len(pages) + 1):
            text = page_text(_page_text(pages, number, document))
            if not text.strip():
                textless.append(number)
            if number > 1:
                out.write(PAGE_SEPARATOR)
            out.write(text)
            document["pages"].append({"number": number})
    return textless


def _page_text(pages: Any, number: int, document: dict[str, Any]) -> str:
    try:
        with _reading():
            page: PageObject = pages[number - 1]
            return page.extract_text() or ""
    except FileRejected as exc:
        if exc.code not in ("corrupt_file", "unsupported_file"):
            raise
        logger.info("no text from page %d: %s", number, exc.message)
        document["unreadable_pages"].append(number)
        return ""


def _preview(page: PageObject, out_dir: Path, limits: ExtractLimits) -> Derivative | None:
    """A thumbnail of the largest image drawn on page 1, if there is one.

    Best effort: a broken or oversized image gives no preview rather than failing the file.
    Sizes are read from the image dictionaries, so an oversized image is never decoded.
    """
    try:
        with _reading():
            name = _largest_image(page, limits)
            if name is None:
                return None
            image = page.images[name].image
            if image is None:
                return None
            image.load()
    except FileRejected as exc:
        if exc.code == "decompression_bomb":
            raise
        logger.info("no preview: %s", exc.message)
        return None
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        logger.info("no preview: %s", exc)
        return None
    size = max(limits.thumbnail_sizes)
    image = for_output(image, limits.derivative_format)
    if max(image.size) > size:
        image.thumbnail((size, size))
    return save(image, out_dir, "preview", limits, THUMB_QUALITY)


def _largest_image(page: PageObject, limits: ExtractLimits) -> str | None:
    """The name of the page's largest image XObject within the pixel limit."""
    resources = _resolved(page, "/Resources")
    xobjects = _resolved(resources, "/XObject") if isinstance(resources, DictionaryObject) else None
    if not isinstance(xobjects, DictionaryObject):
        return None
    best: tuple[int, str] | None = None
    for name in xobjects:
        obj = _resolved(xobjects, name)
        if not isinstance(obj, DictionaryObject) or _resolved(obj, "/Subtype") != "/Image":
            continue
        width, height = _resolved(obj, "/Width"), _resolved(obj, "/Height")
        if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
            continue
        pixels = width * height
        if pixels <= limits.max_image_pixels and (best is None or pixels > best[0]):
            best = (pixels, str(name))
    return best[1] if best else None
