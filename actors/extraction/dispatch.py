"""In-process extraction: detect the type from the bytes, then run the matching extractor.

This is what runs inside the isolated child, and directly in the caller's process when
isolation is off (trusted input, benchmarks).
"""

from __future__ import annotations

from pathlib import Path

from actors.extraction.detect import HEAD_BYTES, detect
from actors.extraction.image import extract_image
from actors.extraction.limits import ExtractLimits
from actors.extraction.pdf import extract_pdf
from actors.extraction.result import Extraction


def extract_in_process(path: Path, out_dir: Path, limits: ExtractLimits) -> Extraction:
    """Extract ``path`` in this process, with no time or memory bound but pypdf's and Pillow's own.

    Raises:
        FileRejected: the file can never be extracted (the code says why).
    """
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    detected = detect(head)
    if detected.kind == "pdf":
        return extract_pdf(path, out_dir, limits)
    if detected.kind == "image":
        return extract_image(path, out_dir, limits, detected.mime)
    return Extraction(kind="other", mime=detected.mime)
