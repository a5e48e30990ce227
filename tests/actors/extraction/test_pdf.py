"""PDF extraction: document info, text, encryption, preview, and hostile PDFs."""

from __future__ import annotations

import zlib

import pytest
from PIL import Image

from models.errors import FileRejected
from tests.actors.extraction.conftest import Extract
from tests.actors.extraction.corpus import BOOK_METADATA, BOOK_PAGES, book, encrypted, gradient
from tests.actors.extraction.pdf_factory import make_pdf, serialize, stream


def test_document_info_pages_and_text(extract: Extract) -> None:
    result = extract(book(), name="book.bin")

    assert (result.kind, result.mime) == ("pdf", "application/pdf")
    doc = result.document
    assert doc is not None
    assert doc["page_count"] == 3
    assert doc["version"] == "1.5"
    assert (doc["encrypted"], doc["locked"], doc["text_truncated"]) == (False, False, False)
    assert doc["metadata"] == BOOK_METADATA
    assert [p["number"] for p in doc["pages"]] == [1, 2, 3]
    assert doc["pages"][0]["text"].split() == "Chapter one It was a dark night.".split()
    assert doc["pages"][2]["text"].strip() == "The end (really)"
    assert doc["unreadable_pages"] == []


def test_full_text_is_a_derivative_with_pages_split_by_form_feeds(extract: Extract) -> None:
    result = extract(book())

    text = result.derivative("text")
    assert text is not None
    assert (text.filename, text.content_type) == ("text.txt", "text/plain; charset=utf-8")
    pages = text.path.read_text(encoding="utf-8").split("\f")
    assert [p.split() for p in pages] == [" ".join(lines).split() for lines in BOOK_PAGES]
    assert result.derivative("preview") is None


def test_text_past_the_result_budget_stays_in_the_derivative_only(extract: Extract) -> None:
    pages = [[f"Page {n} " + "lorem ipsum " * 20] for n in range(1, 11)]

    result = extract(make_pdf(pages), max_text_bytes_in_result=800)

    doc = result.document
    assert doc is not None and doc["text_truncated"] is True
    kept = [p for p in doc["pages"] if p["text"]]
    assert 1 <= len(kept) < 10
    assert sum(len(p["text"].encode()) for p in kept) <= 800
    assert [p["number"] for p in kept] == list(range(1, len(kept) + 1))
    text = result.derivative("text")
    assert text is not None
    assert text.path.read_text(encoding="utf-8").count("lorem ipsum") == 200


def test_page_one_image_becomes_a_preview(extract: Extract) -> None:
    result = extract(make_pdf([["With a picture"], ["No picture"]], image=gradient(300, 200)))

    preview = result.derivative("preview")
    assert preview is not None
    assert (preview.filename, preview.content_type) == ("preview.jpg", "image/jpeg")
    assert (preview.width, preview.height) == (300, 200)
    with Image.open(preview.path) as im:
        assert (im.format, im.size) == ("JPEG", (300, 200))
        left, right = im.getpixel((5, 100)), im.getpixel((295, 100))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert left[0] < 40 and right[0] > 215


def test_large_page_image_preview_is_scaled_to_the_largest_thumbnail(extract: Extract) -> None:
    result = extract(make_pdf([["Big picture"]], image=gradient(1600, 400)), thumbnail_sizes=(128, 512))

    preview = result.derivative("preview")
    assert preview is not None and (preview.width, preview.height) == (512, 128)


def test_pdf_without_text_has_no_text_derivative(extract: Extract) -> None:
    result = extract(make_pdf([[], []]))

    assert result.document is not None and result.document["page_count"] == 2
    assert result.derivatives == []


@pytest.mark.parametrize("algorithm", ["AES-256", "RC4-128"])
def test_encrypted_with_a_user_password_is_reported_not_rejected(extract: Extract, algorithm: str) -> None:
    result = extract(encrypted("user-secret", algorithm))

    doc = result.document
    assert doc is not None
    assert (doc["encrypted"], doc["locked"], doc["page_count"]) == (True, True, 3)
    empty = {"text": "", "text_source": "layer", "ocr_confidence": None}
    assert doc["pages"] == [{"number": n, **empty} for n in (1, 2, 3)]
    assert doc["metadata"]["title"] is None
    assert result.derivatives == []


def test_encrypted_with_an_empty_user_password_is_read(extract: Extract) -> None:
    result = extract(encrypted("", "AES-128"))

    doc = result.document
    assert doc is not None
    assert (doc["encrypted"], doc["locked"]) == (True, False)
    assert doc["metadata"]["author"] == "Ada Lovelace"
    assert doc["pages"][1]["text"].strip() == "Chapter two"
    assert result.derivative("text") is not None


def test_streams_compressed_several_times_over_are_read(extract: Extract) -> None:
    result = extract(make_pdf([["Deeply packed text"]], flate_layers=3))

    assert result.document is not None
    assert result.document["pages"][0]["text"].strip() == "Deeply packed text"


def test_catalog_version_overrides_an_older_header(extract: Extract) -> None:
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R /Version /1.7 >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
    }
    result = extract(serialize(objects, version="1.4"))

    assert result.document is not None and result.document["version"] == "1.7"


@pytest.fixture(scope="module")
def nested_bomb() -> bytes:
    """A content stream of two Flate layers: ~1 KB that inflates to 100 MB of zeros.

    pypdf stops inflating past its 75 MB limit; the bomb is built once per module (~0.5 s).
    """
    inner = zlib.compress(bytes(100_000_000), 9)
    outer = zlib.compress(inner, 9)
    body = b"<< /Length %d /Filter [/FlateDecode /FlateDecode] >>\nstream\n" % len(outer)
    return make_pdf([["bomb"]], raw_content={0: body + outer + b"\nendstream"})


def test_nested_flate_bomb_is_rejected(extract: Extract, nested_bomb: bytes) -> None:
    assert len(nested_bomb) < 2000
    with pytest.raises(FileRejected) as caught:
        extract(nested_bomb)
    assert caught.value.code == "decompression_bomb"


def test_more_filters_than_pypdf_allows_is_rejected(extract: Extract) -> None:
    with pytest.raises(FileRejected) as caught:
        extract(make_pdf([["x"]], flate_layers=17))
    assert caught.value.code == "decompression_bomb"


def test_too_many_pages(extract: Extract) -> None:
    with pytest.raises(FileRejected) as caught:
        extract(make_pdf([["p"]] * 12), max_pdf_pages=10)
    assert caught.value.code == "too_many_pages"
    assert caught.value.details == {"page_count": 12, "max_pages": 10}


def test_huge_declared_page_count_is_rejected_without_walking_the_tree(extract: Extract) -> None:
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 100000000 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
    }
    with pytest.raises(FileRejected) as caught:
        extract(serialize(objects))
    assert caught.value.code == "too_many_pages"


@pytest.mark.parametrize(("count", "pages"), [(b"1", 1), (b"100000000", None)])
def test_indirect_page_count_is_followed(extract: Extract, count: bytes, pages: int | None) -> None:
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 4 0 R >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
        4: count,
    }
    if pages is None:
        with pytest.raises(FileRejected) as caught:
            extract(serialize(objects))
        assert caught.value.code == "too_many_pages"
    else:
        result = extract(serialize(objects))
        assert result.document is not None and result.document["page_count"] == pages


def test_page_tree_loop_is_corrupt(extract: Extract) -> None:
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
    }
    with pytest.raises(FileRejected) as caught:
        extract(serialize(objects))
    assert caught.value.code == "corrupt_file"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(book()[: len(book()) // 2], id="truncated-half"),
        pytest.param(book()[:100], id="truncated-header"),
        pytest.param(b"%PDF-1.4\n" + b"garbage " * 100, id="garbage"),
        pytest.param(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", id="no-page-tree"),
    ],
)
def test_corrupt_pdfs(extract: Extract, data: bytes) -> None:
    with pytest.raises(FileRejected) as caught:
        extract(data)
    assert caught.value.code == "corrupt_file"


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(stream(b"\xff\xff\xff").replace(b">>", b" /Filter /LZWDecode >>", 1), id="bad-lzw"),
        pytest.param(stream(b"BT ET").replace(b">>", b" /Filter /NoSuchDecode >>", 1), id="unknown-filter"),
    ],
)
def test_unreadable_page_is_listed_and_the_rest_is_read(extract: Extract, broken: bytes) -> None:
    result = extract(make_pdf([["fine"], ["lost"], ["also fine"]], raw_content={1: broken}))

    doc = result.document
    assert doc is not None
    assert [p["text"].strip() for p in doc["pages"]] == ["fine", "", "also fine"]
    assert doc["unreadable_pages"] == [2]


def test_content_stream_that_is_not_zlib_gives_an_empty_page(extract: Extract) -> None:
    broken = stream(b"this is not zlib data at all").replace(b">>", b" /Filter /FlateDecode >>", 1)
    result = extract(make_pdf([["fine"], ["lost"]], raw_content={1: broken}))

    doc = result.document
    assert doc is not None
    assert [p["text"].strip() for p in doc["pages"]] == ["fine", ""]
