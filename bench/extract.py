"""Benchmark of the extraction library: seconds per PDF page and per image megapixel, per page
of tables and per page of OCR, peak memory, and what process isolation costs.

Not a test: it prints figures and asserts nothing. The machine is shared and noisy, so every
figure is a median of several runs, and each workload is also reported as a ratio against a
*ceiling* measured in the same run (the bare library doing the same work: pypdf's
``extract_text`` over every page, Pillow's decode + thumbnail + encode, pdfplumber's
``find_tables`` + ``extract`` over every page, PDFium's render + Tesseract's text per page),
which stays meaningful when absolute times swing. The table and OCR workloads are whole
extractions (parsing, text layer and tables or OCR), so their ratio also shows what chute
adds around the library.

Peak memory: the isolated child measures its own ``ru_maxrss`` and reports it (Tesseract, a
process of its own, is reported apart: ``tesseract_peak_rss_mb``). (It is a child
of the multiprocessing fork server, not of this process, so ``RUSAGE_CHILDREN`` here never
sees it.) In-process runs are sampled by a thread reading ``/proc/self/statm``, since this
process's ``ru_maxrss`` only ever grows.

    python -m bench extract [--quick] [--json-only] [--pages N] [--megapixels M] [--repeat R]
                            [--table-pages N] [--scan-pages N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pdfplumber
import pypdfium2 as pdfium
import pytesseract
from PIL import Image
from pypdf import PdfReader

from actors.extraction import ExtractLimits, extract_file
from actors.extraction.ocr import probe
from actors.extraction.raster import MIN_SCAN_DPI, POINTS_PER_INCH
from actors.extraction.sandbox import run_isolated
from bench.documents import make_scans, make_tables, serialize
from bench.pipeline import jpeg_file

#: Text lines per generated page: about a paperback page (~2.5 KB of text).
LINES_PER_PAGE = 40

#: Interval of the in-process RSS sampler.
SAMPLE_SECONDS = 0.002


@dataclass(frozen=True)
class Sample:
    """The median seconds and the largest peak RSS over the repetitions of one workload."""

    seconds: float
    peak_rss_mb: float


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON line, then a table."""
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="chute-bench-extract-") as tmp:
        work = Path(tmp)
        figures = run(work, pages=args.pages, megapixels=args.megapixels, repeat=args.repeat,
                      table_pages=args.table_pages, scan_pages=args.scan_pages)  # fmt: skip
    print(json.dumps({"bench": "extract", **figures}, sort_keys=True))
    if not args.json_only:
        print(table(figures))
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench extract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, a few seconds in all")
    parser.add_argument("--pages", type=int, help="pages of the generated PDF (default 200, quick 10)")
    parser.add_argument("--megapixels", type=float, help="size of the generated photo (default 24, quick 2)")
    parser.add_argument("--repeat", type=int, help="runs per workload, median reported (default 5, quick 3)")
    parser.add_argument("--table-pages", type=int, help="pages of the ruled-table PDF (default 50, quick 5)")
    parser.add_argument("--scan-pages", type=int, help="pages of the scanned PDF for OCR (default 5, quick 1)")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    args = parser.parse_args(argv)
    args.table_pages = args.table_pages or (5 if args.quick else 50)
    args.scan_pages = args.scan_pages or (1 if args.quick else 5)
    args.pages = args.pages or (10 if args.quick else 200)
    args.megapixels = args.megapixels or (2.0 if args.quick else 24.0)
    args.repeat = args.repeat or (3 if args.quick else 5)
    return args


def run(
    work: Path, *, pages: int, megapixels: float, repeat: int, table_pages: int = 5, scan_pages: int = 1
) -> dict[str, Any]:
    """Generate the inputs, measure every workload, and return the figures.

    The variants of all workloads run round-robin within each repetition, so a noisy
    neighbour slows them alike instead of skewing one median.
    """
    pdf = work / "book.pdf"
    pdf.write_bytes(make_book(pages))
    photo = work / "photo.jpg"
    width, height = make_photo(photo, megapixels)
    tiny = work / "tiny.txt"
    tiny.write_bytes(b"hello\n")
    small = work / "small.jpg"  # the pipeline bench's photo: what isolation costs a typical image
    small.write_bytes(jpeg_file())
    tables = work / "tables.pdf"
    tables.write_bytes(make_tables(table_pages))
    scans = work / "scans.pdf"
    scans.write_bytes(make_scans(scan_pages))
    limits = ExtractLimits(
        max_pdf_pages=max(pages, 2000),
        max_image_pixels=max(width * height, 64_000_000),
        time_limit_seconds=600,
        memory_limit_mb=4096,
        ocr_mode="never",  # the book and the photo measure parsing alone
        tesseract=probe().command,
        tables_time_limit_seconds=600,
        ocr_time_limit_seconds=600,
    )
    if limits.tesseract is None:
        raise SystemExit(f"bench extract needs Tesseract: {probe().problem}")
    ocr = replace(limits, ocr_mode="auto")
    variants: dict[str, Callable[[Path], int]] = {
        "isolated": lambda path: _extract(path, work, ocr if path == scans else limits),
        "in_process": lambda path: _extract(path, work, replace(ocr if path == scans else limits, isolation=False)),
    }
    ceilings: dict[str, Callable[[Path], int]] = {
        "book.pdf": pypdf_ceiling,
        "photo.jpg": lambda path: pillow_ceiling(path, work),
        "tables.pdf": pdfplumber_ceiling,
        "scans.pdf": tesseract_ceiling,
    }

    server_start, _ = _timed(variants["isolated"], tiny)  # the first child starts the fork server
    samples: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for _ in range(repeat):
        for path in (tiny, tiny, tiny, small, small, small, pdf, photo, tables, scans):
            runs = dict(variants)
            if path.name in ceilings:
                runs["ceiling"] = ceilings[path.name]
            for variant, fn in runs.items():
                samples.setdefault((path.name, variant), []).append(_timed(fn, path))

    def median(name: str, variant: str) -> Sample:
        values = samples[(name, variant)]
        return Sample(statistics.median(t for t, _ in values), max(kb for _, kb in values) / 1024)

    mp = width * height / 1e6
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "repeat": repeat}
    for key, document, count in (("tables", tables, table_pages), ("ocr", scans, scan_pages)):
        on, off, ceiling = (median(document.name, v) for v in ("isolated", "in_process", "ceiling"))
        figures[key] = {
            "pages": count,
            "bytes": document.stat().st_size,
            "s_per_page": {"isolated": on.seconds / count, "in_process": off.seconds / count},
            "ceiling_s_per_page": ceiling.seconds / count,
            "ratio_to_ceiling": off.seconds / ceiling.seconds,
            "isolation_ratio": on.seconds / off.seconds,
            "peak_rss_mb": {"isolated": on.peak_rss_mb, "in_process": off.peak_rss_mb},
        }
    figures["ocr"]["tesseract_peak_rss_mb"] = max(_TESSERACT_RSS_KB[0], _own_children_rss_kb()) / 1024
    for key, path, unit, per in (("pdf", pdf, "page", pages), ("image", photo, "megapixel", mp)):
        on, off, ceiling = (median(path.name, v) for v in ("isolated", "in_process", "ceiling"))
        figures[key] = {
            "pages" if key == "pdf" else "megapixels": per if key == "pdf" else round(mp, 2),
            "bytes": path.stat().st_size,
            f"s_per_{unit}": {"isolated": on.seconds / per, "in_process": off.seconds / per},
            f"ceiling_s_per_{unit}": ceiling.seconds / per,
            "ratio_to_ceiling": off.seconds / ceiling.seconds,
            "isolation_ratio": on.seconds / off.seconds,
            "peak_rss_mb": {"isolated": on.peak_rss_mb, "in_process": off.peak_rss_mb},
        }
    startup_on, startup_off = median(tiny.name, "isolated"), median(tiny.name, "in_process")
    small_on, small_off = median(small.name, "isolated"), median(small.name, "in_process")
    figures["isolation"] = {
        "fork_server_start_ms": server_start * 1000,
        "startup_ms": (startup_on.seconds - startup_off.seconds) * 1000,
        "child_peak_rss_mb": startup_on.peak_rss_mb,
        "small_jpeg_ms": {"isolated": small_on.seconds * 1000, "in_process": small_off.seconds * 1000},
    }
    return figures


#: The largest Tesseract an isolated child reported (a list: set from the variants' lambdas).
_TESSERACT_RSS_KB = [0]


def _own_children_rss_kb() -> int:
    """The largest child this process waited for: the Tesseracts of in-process runs and ceilings."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def _extract(path: Path, work: Path, limits: ExtractLimits) -> int:
    """One extraction into a fresh directory; the peak RSS in KiB (the child's when isolated)."""
    out = Path(tempfile.mkdtemp(dir=work))
    try:
        if limits.isolation:
            _, stats = run_isolated(path, out, limits)
            _TESSERACT_RSS_KB[0] = max(_TESSERACT_RSS_KB[0], stats.children_max_rss_kb)
            return stats.max_rss_kb
        with RssSampler() as sampler:
            extract_file(path, out, limits)
        return sampler.peak_kb
    finally:
        shutil.rmtree(out)


def _timed(fn: Callable[[Path], int], path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    peak_kb = fn(path)
    return time.perf_counter() - started, peak_kb


class RssSampler:
    """Peak resident set size of this process while the block runs, sampled by a thread."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._page_kb = os.sysconf("SC_PAGE_SIZE") // 1024

    def __enter__(self) -> RssSampler:
        self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._read()

    def _read(self) -> None:
        with open("/proc/self/statm") as fh:
            resident_pages = int(fh.read().split()[1])
        self.peak_kb = max(self.peak_kb, resident_pages * self._page_kb)


# --- Ceilings: the bare libraries doing the same work --------------------------------------------


def pypdf_ceiling(path: Path) -> int:
    with open(path, "rb") as fh:
        for page in PdfReader(fh).pages:
            page.extract_text()
    return 0


def pdfplumber_ceiling(path: Path) -> int:
    """Every page's tables found and read, as :mod:`actors.extraction.tables` does."""
    with pdfplumber.open(path) as pdf:
        for page in pdf.pages:
            for table in page.find_tables():
                table.extract()
            page.close()
    return 0


def tesseract_ceiling(path: Path) -> int:
    """Every page rendered by PDFium at the scans' resolution and read by Tesseract, in grey."""
    document = pdfium.PdfDocument(path)
    try:
        for page in document:
            image = page.render(scale=MIN_SCAN_DPI / POINTS_PER_INCH, grayscale=True).to_pil().copy()
            pytesseract.image_to_string(image, lang="eng")
            page.close()
    finally:
        document.close()
    return 0


def pillow_ceiling(path: Path, work: Path) -> int:
    """Decode once, then the same three JPEG derivatives from the largest, as the library does."""
    with Image.open(path) as im:
        im.draft("RGB", (2048, 2048))
        im.thumbnail((2048, 2048))
        for side in (2048, 1024, 256):
            im.thumbnail((side, side))
            im.save(work / f"ceiling_{side}.jpg", quality=82)
    return 0


# --- Inputs ---------------------------------------------------------------------------------------


def make_book(pages: int) -> bytes:
    """A PDF of ``pages`` pages of Helvetica text with Flate-compressed content, like real books."""
    lorem = "The quick brown fox jumps over the lazy dog while the engine computes Bernoulli numbers."
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for number in range(1, pages + 1):
        lines = [f"Page {number}, line {n}: {lorem}" for n in range(LINES_PER_PAGE)]
        content = b"BT /F1 9 Tf 40 800 Td 11 TL " + b" ".join(b"(%s) Tj T*" % line.encode() for line in lines) + b" ET"
        data = zlib.compress(content)
        page_id = len(objects) + 1
        kids.append(b"%d 0 R" % page_id)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >>"
            b" /Contents %d 0 R >>" % (page_id + 1)
        )
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(data), data))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % pages
    return serialize(objects)


def make_photo(path: Path, megapixels: float) -> tuple[int, int]:
    """A 3:2 JPEG of about ``megapixels`` with noise over gradients, so it compresses like a photo."""
    width = int(math.sqrt(megapixels * 1e6 * 3 / 2))
    height = int(width * 2 / 3)
    noise = Image.effect_noise((width, height), 40)
    horizontal = Image.linear_gradient("L").resize((width, height))
    vertical = Image.linear_gradient("L").rotate(90).resize((width, height))
    Image.merge("RGB", (horizontal, vertical, noise)).save(path, quality=90)
    return width, height


# --- Report ---------------------------------------------------------------------------------------


def table(figures: dict[str, Any]) -> str:
    pdf, img, iso, tab, ocr = figures["pdf"], figures["image"], figures["isolation"], figures["tables"], figures["ocr"]
    rows = [
        ("workload", "isolated", "in-process", "ceiling", "ours/ceil", "iso/in-proc"),
        (
            f"PDF, {pdf['pages']} pages: ms/page",
            f"{pdf['s_per_page']['isolated'] * 1000:.2f}",
            f"{pdf['s_per_page']['in_process'] * 1000:.2f}",
            f"{pdf['ceiling_s_per_page'] * 1000:.2f}",
            f"{pdf['ratio_to_ceiling']:.2f}",
            f"{pdf['isolation_ratio']:.2f}",
        ),
        (
            f"image, {img['megapixels']} MP: ms/MP",
            f"{img['s_per_megapixel']['isolated'] * 1000:.1f}",
            f"{img['s_per_megapixel']['in_process'] * 1000:.1f}",
            f"{img['ceiling_s_per_megapixel'] * 1000:.1f}",
            f"{img['ratio_to_ceiling']:.2f}",
            f"{img['isolation_ratio']:.2f}",
        ),
        *(
            (
                f"{label}, {w['pages']} pages: ms/page",
                f"{w['s_per_page']['isolated'] * 1000:.1f}",
                f"{w['s_per_page']['in_process'] * 1000:.1f}",
                f"{w['ceiling_s_per_page'] * 1000:.1f}",
                f"{w['ratio_to_ceiling']:.2f}",
                f"{w['isolation_ratio']:.2f}",
            )
            for label, w in (("tables", tab), ("OCR", ocr))
        ),
        ("PDF peak RSS (MB)", f"{pdf['peak_rss_mb']['isolated']:.0f}", f"{pdf['peak_rss_mb']['in_process']:.0f}"),
        ("tables peak RSS (MB)", f"{tab['peak_rss_mb']['isolated']:.0f}", f"{tab['peak_rss_mb']['in_process']:.0f}"),
        ("OCR peak RSS (MB)", f"{ocr['peak_rss_mb']['isolated']:.0f}", f"{ocr['peak_rss_mb']['in_process']:.0f}"),
        ("Tesseract peak RSS (MB)", f"{ocr['tesseract_peak_rss_mb']:.0f}"),
        ("image peak RSS (MB)", f"{img['peak_rss_mb']['isolated']:.0f}", f"{img['peak_rss_mb']['in_process']:.0f}"),
    ]
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.append(
        f"isolation: {iso['startup_ms']:.1f} ms per child, fork server start {iso['fork_server_start_ms']:.0f} ms"
        f" (once per worker process), an idle child peaks at {iso['child_peak_rss_mb']:.0f} MB RSS"
    )
    small = iso["small_jpeg_ms"]
    lines.append(f"a 100 KB JPEG: {small['isolated']:.1f} ms isolated, {small['in_process']:.1f} ms in process")
    lines.append(f"medians of {figures['repeat']} runs on {figures['cpus']} CPUs; RSS is the process's, not the delta")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
