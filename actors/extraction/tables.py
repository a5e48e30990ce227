"""Tables from PDFs with pdfplumber: per page, each ruled table's box, header row and rows.

pdfplumber (on pdfminer.six) is the field's usual pure-Python choice: it finds tables from the
lines and rectangles a page draws and assigns characters to cells by position, with no Java
(tabula) or OpenCV and Ghostscript (camelot) to install. Its default "lines" strategy is
used: it finds ruled tables and stays quiet on prose, where the "text" strategy sees a
table in every two-column page.

pdfplumber parses every character of a page before it looks for lines, which costs a book
about as much again as pypdf's whole text extraction; so pages that draw no path at all (no
line, no rectangle: a ruled table needs some) are found first with PDFium, which lists a
page's objects in C, and only the others are handed to pdfplumber.

Bounded three ways: the first ``tables_max_pages`` pages are searched, at most
:data:`MAX_TABLES` tables are kept, and the phase has its own time budget (a timer
interrupts pdfminer mid-page in the sandbox's child). Hitting a bound, or a page pdfminer
cannot read, never fails the file: ``tables_error`` says which (``tables_page_limit``,
``tables_count_limit``, ``tables_time_limit``, ``tables_failed``) and which tables were found.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import pdfplumber
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from pdfminer.psexceptions import PSException
from pdfplumber.utils.exceptions import PdfminerException

from actors.extraction.budget import BudgetExceeded, interrupting, start_phase
from actors.extraction.limits import ExtractLimits
from actors.extraction.malformed import MALFORMED_INPUT_ERRORS
from actors.extraction.raster import MAX_FORM_DEPTH, RasterError, open_pdf
from actors.extraction.result import Derivative
from actors.extraction.text import clean

logger = logging.getLogger(__name__)

#: Tables kept from one file, each a CSV derivative: a page of hairlines must not make thousands.
MAX_TABLES = 500

#: What pdfminer and pdfplumber raise on a page they cannot read.
TABLE_ERRORS: tuple[type[BaseException], ...] = (PSException, PdfminerException, *MALFORMED_INPUT_ERRORS)

#: Content type of the CSV derivatives.
CSV_TYPE = "text/csv; charset=utf-8"


def extract_tables(path: Path, out_dir: Path, limits: ExtractLimits, document: dict[str, Any]) -> list[Derivative]:
    """Find the tables of the PDF at ``path``, record them in ``document``, write one CSV each.

    Sets ``document["tables"]`` (``[{page, index, bbox, header, rows, row_count, csv}]``, in
    page order; ``bbox`` is ``[x0, top, x1, bottom]`` in points from the page's top left),
    ``tables_truncated`` (cells past the result budget are only in the CSVs) and
    ``tables_error`` (None, or why the search stopped short).
    """
    search = _Search(out_dir, limits.max_table_bytes_in_result, document)
    page_count = int(document.get("page_count") or 0)
    searched = min(page_count, limits.tables_max_pages)
    if searched == 0:
        return search.derivatives
    budget = start_phase("tables", limits.tables_time_limit_seconds)
    try:
        with interrupting(budget):
            candidates = _ruled_pages(path, searched)
            if not candidates:
                raise _NothingToSearch
            with pdfplumber.open(path, pages=candidates, raise_unicode_errors=False) as pdf:
                for number, page in zip(candidates, pdf.pages, strict=True):
                    search.page = number
                    if budget.expired:  # without isolation nothing interrupts: check between pages
                        raise BudgetExceeded
                    if not search.add_page(page):
                        break
    except _NothingToSearch:
        pass
    except BudgetExceeded:
        message = f"table search ran out of its {limits.tables_time_limit_seconds:g} s"
        search.stop("tables_time_limit", message, {"from_page": search.page})
    except TABLE_ERRORS as exc:
        search.stop("tables_failed", f"pdfplumber cannot read the PDF: {exc}", {})
    if search.unreadable:
        search.stop("tables_failed", "pdfplumber cannot read some pages", {"pages": search.unreadable})
    if searched < page_count:
        message = f"tables are searched on the first {searched} pages"
        search.stop("tables_page_limit", message, {"from_page": searched + 1})
    return search.derivatives


class _NothingToSearch(Exception):
    """No page draws a line: pdfplumber need not open the file."""


def _ruled_pages(path: Path, count: int) -> list[int]:
    """The pages among the first ``count`` that draw at least one path (all of them if PDFium
    cannot tell: pdfplumber then judges, and reports what it cannot read)."""
    try:
        with open_pdf(path) as document:
            return [n for n in range(1, count + 1) if _draws_paths(document, n)]
    except RasterError:
        return list(range(1, count + 1))


def _draws_paths(document: pdfium.PdfDocument, number: int) -> bool:
    try:
        page = document[number - 1]
    except (pdfium.PdfiumError, IndexError):
        return True
    try:
        paths = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=MAX_FORM_DEPTH)
        return next(paths, None) is not None
    except pdfium.PdfiumError:
        return True
    finally:
        page.close()


class _Search:
    """The tables found so far, the result budget left, and why the search stopped (the first reason)."""

    def __init__(self, out_dir: Path, room: int, document: dict[str, Any]) -> None:
        self.out_dir = out_dir
        self.room = room
        self.document = document
        self.tables: list[dict[str, Any]] = []
        self.derivatives: list[Derivative] = []
        self.unreadable: list[int] = []
        self.page = 0
        document.update({"tables": self.tables, "tables_truncated": False, "tables_error": None})

    def add_page(self, page: Any) -> bool:
        """Record the tables of one page; False when no more may be kept."""
        try:
            found = [(table.extract(), table.bbox) for table in page.find_tables()]
        except TABLE_ERRORS as exc:
            logger.info("no tables from page %d: %s", self.page, exc)
            self.unreadable.append(self.page)
            return True
        finally:
            page.close()  # drops the page's parsed objects: memory holds one page at a time
        for index, (cells, bbox) in enumerate(found, start=1):
            if len(self.tables) >= MAX_TABLES:
                self.stop("tables_count_limit", f"at most {MAX_TABLES} tables are kept", {"from_page": self.page})
                return False
            self._add(index, cells, bbox)
        return True

    def _add(self, index: int, cells: list[list[str | None]], bbox: tuple[float, float, float, float]) -> None:
        name = f"table-p{self.page}-{index}"
        path = self.out_dir / f"{name}.csv"
        rows = [[None if cell is None else clean(cell) for cell in row] for row in cells]  # None: merged
        with open(path, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([["" if cell is None else cell for cell in row] for row in rows])
        entry: dict[str, Any] = {
            "page": self.page,
            "index": index,
            "bbox": [round(v, 2) for v in bbox],
            "header": rows[0] if rows else [],
            "rows": rows[1:],
            "row_count": max(len(rows) - 1, 0),
            "csv": path.name,
        }
        size = len(json.dumps([entry["header"], entry["rows"]], ensure_ascii=False).encode("utf-8"))
        if self.document["tables_truncated"] or size > self.room:
            self.document["tables_truncated"] = True
            entry["header"], entry["rows"] = [], []
        else:
            self.room -= size
        self.tables.append(entry)
        self.derivatives.append(Derivative(name=name, filename=path.name, content_type=CSV_TYPE, path=path))

    def stop(self, code: str, message: str, details: dict[str, Any]) -> None:
        if self.document["tables_error"] is None:
            self.document["tables_error"] = {"code": code, "message": message, "details": details}

