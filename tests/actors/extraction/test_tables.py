"""Tables: ruled tables read cell by cell, each a CSV derivative, bounded in pages, time and size."""

from __future__ import annotations

import csv
import io

from actors.extraction import ExtractLimits, extract_file
from tests.actors.extraction.conftest import Extract
from tests.actors.extraction.documents import PEOPLE, PRICES, STOCK, tables_pdf
from tests.actors.extraction.pdf_factory import make_pdf, page_content, stream


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def test_ruled_tables_come_back_cell_by_cell_with_a_csv_each(extract: Extract) -> None:
    result = extract(tables_pdf())

    doc = result.document
    assert doc is not None and doc["tables_error"] is None and doc["tables_truncated"] is False
    tables = doc["tables"]
    assert [(t["page"], t["index"]) for t in tables] == [(1, 1), (1, 2), (3, 1)]
    for table, expected in zip(tables, [PRICES, PEOPLE, STOCK], strict=True):
        assert table["header"] == expected[0]
        assert table["rows"] == expected[1:]
        assert table["row_count"] == len(expected) - 1
        derivative = result.derivative(f"table-p{table['page']}-{table['index']}")
        assert derivative is not None and derivative.filename == table["csv"]
        assert derivative.content_type == "text/csv; charset=utf-8"
        assert csv_rows(derivative.path.read_bytes()) == expected
    # Boxes in points from the page's top left: the prices table starts 1 inch in, 142 pt down.
    assert tables[0]["bbox"] == [72.0, 142.0, 362.0, 222.0]
    assert tables[2]["bbox"] == [100.0, 92.0, 380.0, 152.0]
    # The table's words are still in the page text.
    assert "Pears, ripe" in doc["pages"][0]["text"]


def test_tables_past_the_result_budget_are_only_in_their_csv(extract: Extract) -> None:
    result = extract(tables_pdf(), max_table_bytes_in_result=150)

    doc = result.document
    assert doc is not None and doc["tables_truncated"] is True
    kept = [t for t in doc["tables"] if t["header"]]
    assert [t["header"] for t in kept] == [PRICES[0]]  # the first fits, the rest do not
    last = doc["tables"][-1]
    assert (last["header"], last["rows"], last["row_count"]) == ([], [], 2)
    derivative = result.derivative("table-p3-1")
    assert derivative is not None and csv_rows(derivative.path.read_bytes()) == STOCK


def test_pages_past_the_page_limit_are_not_searched(extract: Extract) -> None:
    result = extract(tables_pdf(), tables_max_pages=2)

    doc = result.document
    assert doc is not None
    assert [t["page"] for t in doc["tables"]] == [1, 1]
    assert doc["tables_error"]["code"] == "tables_page_limit"
    assert doc["tables_error"]["details"] == {"from_page": 3}
    assert result.derivative("table-p3-1") is None


def slow_tables_pdf() -> bytes:
    """One page of 8,000 short ruled lines: pdfminer spends seconds on it, each line an object."""
    lines = b"\n".join(b"%d %d m %d %d l S" % (10 + i % 500, 10 + i // 500, 11 + i % 500, 10 + i // 500)
                       for i in range(8_000))  # fmt: skip
    return make_pdf([[]], raw_content={0: stream(page_content(["Lines"]) + b"\n" + lines, flate_layers=1)})


def test_table_time_limit_stops_the_search_not_the_file(extract: Extract) -> None:
    result = extract(slow_tables_pdf(), tables_time_limit_seconds=0.2)

    doc = result.document
    assert doc is not None and doc["pages"][0]["text"].strip() == "Lines"
    assert doc["tables"] == []
    assert doc["tables_error"]["code"] == "tables_time_limit"


def test_locked_pdf_has_no_tables(tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    from tests.actors.extraction.corpus import encrypted

    path = tmp_path / "locked.pdf"
    path.write_bytes(encrypted("secret", "AES-256"))
    result = extract_file(path, out_dir, ExtractLimits(isolation=False))

    assert result.document is not None and result.document["locked"] is True
    assert result.document["tables"] == [] and result.document["tables_error"] is None
    assert result.ocr == "not_needed"
