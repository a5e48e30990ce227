"""The extraction library: what a file is and what can be read from it, bounded in time and memory.

Pure code: no database, no Dramatiq, no settings. The extract stage builds an
:class:`ExtractLimits` with :meth:`ExtractLimits.from_settings` and calls :func:`extract_file`.

Error codes (:class:`models.errors.FileRejected`): ``corrupt_file``, ``unsupported_file``,
``decompression_bomb``, ``too_many_pages``, ``extraction_timeout``,
``extraction_limit_exceeded``, ``extraction_crashed``.
"""

from __future__ import annotations

from pathlib import Path

from actors.extraction.detect import Detected, detect
from actors.extraction.dispatch import extract_in_process
from actors.extraction.limits import ExtractLimits
from actors.extraction.result import Derivative, Extraction
from actors.extraction.sandbox import run_isolated

__all__ = ["Derivative", "Detected", "ExtractLimits", "Extraction", "detect", "extract_file"]


def extract_file(path: Path, out_dir: Path, limits: ExtractLimits) -> Extraction:
    """Detect the type of ``path`` from its bytes, extract it and write derivatives into ``out_dir``.

    With ``limits.isolation`` the parsing runs in a child process under memory, CPU and
    wall-clock limits (see :mod:`actors.extraction.sandbox`); safe to call from any thread.

    Raises:
        FileRejected: the file can never be extracted; ``code`` says why.
        TransientError: ``extraction_unavailable``, no child process could be started.
        FileNotFoundError: ``path`` or ``out_dir`` is missing (the caller's bug, not the file's).
    """
    path, out_dir = Path(path), Path(out_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no file to extract at {path}")
    if not out_dir.is_dir():
        raise FileNotFoundError(f"no output directory at {out_dir}")
    if limits.isolation:
        extraction, _ = run_isolated(path, out_dir, limits)
        return extraction
    return extract_in_process(path, out_dir, limits)
