"""OCR with Tesseract: text from PDF pages without a text layer and from images of documents.

Tesseract (Debian's ``tesseract-ocr`` and one ``tesseract-ocr-LANG`` package per language) runs
as a subprocess through pytesseract, one page at a time, with the time left in the OCR budget
as its timeout; a Tesseract that crashes or runs out of memory costs that page, not the
worker. ``OMP_THREAD_LIMIT=1`` keeps it on one core: pages are many and cores are few, and
Tesseract's own threads only fight the other workers for them.

Which pages: ``never`` reads none; ``always`` every page and image; ``auto`` (the default)
the PDF pages whose text layer is empty and the images, of those only what
:func:`looks_like_document` — a photo of a cat is not read, a scan or a photo of a receipt is.

What comes back (:class:`OcrOutcome`) says for the whole file ``done``, ``not_needed``,
``off``, ``unavailable`` or ``incomplete`` (some pages were left, each with a code:
``ocr_page_limit``, ``ocr_time_limit``, ``ocr_image_too_large``, ``ocr_render_failed``,
``ocr_failed``), and the text and mean word confidence (0-100, as Tesseract reports it) of
each page read.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytesseract
from PIL import Image

from actors.extraction.budget import start_phase
from actors.extraction.limits import ExtractLimits
from actors.extraction.raster import RasterError, open_pdf, render_page
from actors.extraction.text import page_text

logger = logging.getLogger(__name__)

#: How to install what OCR needs, for messages.
INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng"

#: Seconds the probe gives ``tesseract --version`` and ``--list-langs``.
PROBE_TIMEOUT_SECONDS = 10

#: A page gets at least this long for Tesseract, even when the budget is nearly spent.
MIN_PAGE_SECONDS = 1.0

#: Reduced size of the image :func:`looks_like_document` measures.
LOOK_SIDE = 1024
#: Below this median brightness (0-255) an image has no light paper.
MIN_PAPER_BRIGHTNESS = 128
#: Share of pixels near the paper's brightness: paper is most of a document.
MIN_PAPER_SHARE = 0.5
#: Pixels within this of the paper's brightness are paper (scanner noise, uneven light).
PAPER_SPREAD = 32
#: Pixels this much darker than the paper are ink.
INK_CONTRAST = 48
#: Share of ink pixels: none is a blank page, too much is not paper with writing (a photo of a
#: receipt counts the desk around it as ink).
INK_SHARE = (0.001, 0.45)
#: Mean HSV saturation (0-255) above which an image is a colour photograph, not a document.
MAX_SATURATION = 80
#: Share of pixels between ink and paper above which the image is not two-toned: writing has
#: few (its edges: under 0.5 % in a blurred, noisy photo of a receipt), a grey photograph or
#: gradient many (9 % in the pipeline benchmark's photo, which Tesseract otherwise read for
#: nothing, 200 ms a file).
MAX_MIDTONE_SHARE = 0.04

#: The whole-file OCR states.
DONE, NOT_NEEDED, OFF, UNAVAILABLE, INCOMPLETE = "done", "not_needed", "off", "unavailable", "incomplete"


@dataclass(frozen=True)
class Engine:
    """What :func:`probe` found: the command to run, or None and why not."""

    command: str | None
    version: str | None = None
    languages: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def available(self) -> bool:
        return self.command is not None


@functools.cache
def probe(languages: tuple[str, ...] = ("eng",), command: str = "tesseract") -> Engine:
    """Whether Tesseract and the data of every language in ``languages`` are installed.

    Asked once per process (installing system packages needs a restart anyway).
    """
    path = shutil.which(command)
    if path is None:
        return Engine(None, problem=f"Tesseract is not installed ({INSTALL_HINT})")
    try:
        version = _run([path, "--version"]).splitlines()[0].strip()
        listed = _run([path, "--list-langs"]).splitlines()[1:]
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return Engine(None, problem=f"Tesseract at {path} does not run: {exc}")
    installed = tuple(sorted(line.strip() for line in listed if line.strip()))
    missing = [lang for lang in languages if lang not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang}" for lang in missing)
        problem = f"Tesseract has no data for {', '.join(missing)} (apt-get install {packages})"
        return Engine(None, version, installed, problem)
    return Engine(path, version, installed)


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS, check=True)
    return done.stdout or done.stderr  # older Tesseracts print the version on stderr


@dataclass(frozen=True)
class PageText:
    """The text Tesseract read on one page, and its mean word confidence (None: no words)."""

    text: str
    confidence: float | None


@dataclass
class OcrOutcome:
    """What OCR did for one file: the whole-file ``status``, each page read, each page left."""

    status: str
    texts: dict[int, PageText] = field(default_factory=dict)
    #: Page number → why it was not read although it should have been.
    skipped: dict[int, tuple[str, str]] = field(default_factory=dict)
    problem: str | None = None

    def error(self) -> dict[str, Any] | None:
        """The result's ``ocr_error``: the first reason pages were left, with those pages."""
        if self.status == UNAVAILABLE:
            return {"code": "ocr_unavailable", "message": self.problem or "Tesseract is not available", "details": {}}
        if not self.skipped:
            return None
        code, message = next(iter(self.skipped.values()))
        pages = [n for n, (c, _) in self.skipped.items() if c == code]
        return {"code": code, "message": message, "details": {"pages": pages}}


class _Unavailable(Exception):
    """Tesseract vanished or cannot start: no page can be read."""


class _Failed(Exception):
    """Tesseract failed on one page; ``code`` says how."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def ocr_pdf(path: Path, limits: ExtractLimits, page_count: int, textless: Iterable[int]) -> OcrOutcome:
    """Read the pages of the PDF at ``path`` that need it: ``textless`` ones in ``auto`` mode.

    Pages are taken in order until the page or time limit; the rest are listed as skipped.
    """
    wanted = list(range(1, page_count + 1)) if limits.ocr_mode == "always" else sorted(set(textless))
    status = _initial_status(limits, bool(wanted))
    if status is not None:
        return status
    try:
        with open_pdf(path) as document:
            return _read_pages(wanted, limits, lambda n: render_page(document, n, limits))
    except RasterError as exc:
        outcome = OcrOutcome(INCOMPLETE)
        outcome.skipped = {n: (exc.code, str(exc)) for n in wanted}
        return outcome


def ocr_image(
    load: Callable[[], Image.Image], limits: ExtractLimits, preview: Callable[[], Image.Image] | None = None
) -> OcrOutcome:
    """Read an uploaded image (``load()`` gives its pixels for OCR) as page 1, if it needs it.

    ``preview()`` gives the image as already decoded for the thumbnails (reduced, upright): in
    ``auto`` mode, a preview that does not look like a document spares decoding it again at
    OCR's resolution, which cost as much as the decode for the thumbnails did (most photos).
    """
    status = _initial_status(limits, True)
    if status is not None:
        return status
    if limits.ocr_mode == "auto" and preview is not None and not looks_like_document(preview().convert("L")):
        return OcrOutcome(NOT_NEEDED)
    return _read_pages([1], limits, lambda _: load())


def _initial_status(limits: ExtractLimits, anything_wanted: bool) -> OcrOutcome | None:
    """The outcome when there is nothing to read, or nothing to read with; None: go on."""
    if limits.ocr_mode == "never":
        return OcrOutcome(OFF)
    if limits.tesseract is None:
        return OcrOutcome(UNAVAILABLE, problem=f"Tesseract or its language data is not installed ({INSTALL_HINT})")
    if not anything_wanted:
        return OcrOutcome(NOT_NEEDED)
    return None


def _read_pages(wanted: list[int], limits: ExtractLimits, pixels: Callable[[int], Image.Image]) -> OcrOutcome:
    budget = start_phase("ocr", limits.ocr_time_limit_seconds)
    outcome = OcrOutcome(NOT_NEEDED)
    with tempfile.TemporaryDirectory(prefix="chute-ocr-") as scratch:
        for number in wanted:
            if len(outcome.texts) >= limits.ocr_max_pages:
                outcome.skipped[number] = ("ocr_page_limit", f"OCR reads at most {limits.ocr_max_pages} pages")
                continue
            if budget.expired:
                outcome.skipped[number] = ("ocr_time_limit", f"OCR ran out of its {limits.ocr_time_limit_seconds:g} s")
                continue
            try:
                im = pixels(number)
                if limits.ocr_mode == "auto" and not looks_like_document(im):
                    continue
                outcome.texts[number] = recognize(im, limits, budget.remaining(), Path(scratch))
            except RasterError as exc:
                outcome.skipped[number] = (exc.code, str(exc))
            except _Failed as exc:
                outcome.skipped[number] = (exc.code, str(exc))
            except _Unavailable as exc:
                return OcrOutcome(UNAVAILABLE, problem=str(exc))
    if outcome.skipped:
        outcome.status = INCOMPLETE
    elif outcome.texts:
        outcome.status = DONE
    return outcome


def recognize(im: Image.Image, limits: ExtractLimits, seconds: float, scratch: Path) -> PageText:
    """Run Tesseract on ``im`` for at most ``seconds`` (at least :data:`MIN_PAGE_SECONDS`).

    The image goes to Tesseract as uncompressed PGM: pytesseract would write PNG, whose
    compression costs a tenth of the OCR itself on a full page.
    """
    assert limits.tesseract is not None
    source = scratch / "page.pgm"
    im.convert("L").save(source, format="PPM")
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    pytesseract.pytesseract.tesseract_cmd = limits.tesseract
    try:
        text, tsv = pytesseract.run_and_get_multiple_output(
            str(source),
            extensions=["txt", "tsv"],
            lang="+".join(limits.ocr_languages),
            timeout=max(seconds, MIN_PAGE_SECONDS),  # type: ignore[arg-type]  # communicate() takes a float
        )
    except pytesseract.TesseractNotFoundError:
        raise _Unavailable(f"Tesseract is not installed at {limits.tesseract} ({INSTALL_HINT})") from None
    except pytesseract.TesseractError as exc:
        raise _Failed(f"Tesseract failed (exit {exc.status}): {exc.message}"[:500], "ocr_failed") from None
    except RuntimeError as exc:  # pytesseract's timeout
        raise _Failed(f"Tesseract did not finish in time: {exc}", "ocr_time_limit") from None
    finally:
        source.unlink(missing_ok=True)
    return PageText(page_text(text).strip(), _confidence(tsv))  # Tesseract ends a page with a form feed


def _confidence(tsv: str) -> float | None:
    """Mean confidence of the recognised words (TSV level 5), rounded to a tenth."""
    scores = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        try:
            if row.get("level") == "5" and (row.get("text") or "").strip() and float(row["conf"]) >= 0:
                scores.append(float(row["conf"]))
        except (KeyError, TypeError, ValueError):
            continue
    return round(sum(scores) / len(scores), 1) if scores else None


def looks_like_document(im: Image.Image) -> bool:
    """Whether ``im`` looks like writing on paper: mostly light, even, colourless, with some ink
    and few tones between ink and paper.

    A cheap measure on a reduced copy (milliseconds), not a classifier: it is there so that
    ``auto`` does not spend seconds of OCR on every photograph and blank page. Uploads it
    misjudges can ask for ``ocr: always``.
    """
    small = im.copy()
    small.thumbnail((LOOK_SIDE, LOOK_SIDE))
    saturation = 0.0
    if small.mode not in ("L", "1", "I", "F", "I;16"):
        hsv = small.convert("RGB").convert("HSV")
        histogram = hsv.getchannel("S").histogram()
        saturation = sum(v * n for v, n in enumerate(histogram)) / max(1, sum(histogram))
    grey = small.convert("L").histogram()
    total = sum(grey)
    paper = _median(grey, total)
    near_paper = sum(grey[max(0, paper - PAPER_SPREAD) : paper + PAPER_SPREAD + 1]) / total
    ink = sum(grey[: max(0, paper - INK_CONTRAST)]) / total
    midtones = sum(grey[max(0, paper - INK_CONTRAST) : max(0, paper - PAPER_SPREAD)]) / total
    return (
        paper >= MIN_PAPER_BRIGHTNESS
        and near_paper >= MIN_PAPER_SHARE
        and INK_SHARE[0] <= ink <= INK_SHARE[1]
        and midtones <= MAX_MIDTONE_SHARE
        and saturation <= MAX_SATURATION
    )


def _median(histogram: list[int], total: int) -> int:
    seen = 0
    for value, count in enumerate(histogram):
        seen += count
        if seen * 2 >= total:
            return value
    return len(histogram) - 1
