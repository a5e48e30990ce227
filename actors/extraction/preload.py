"""Imported by the sandbox's fork server only: what the libraries would otherwise load in each child.

Pillow imports its format plugins lazily, and ``Image.open(..., formats=...)`` naming WebP,
TIFF or ICO loads all of them; in children forked from a server that had not, every child did
it again (a fifth of a loaded worker's samples). Loading them here once makes them part of
what every child inherits.
"""

from __future__ import annotations

from PIL import Image

import actors.extraction.dispatch  # noqa: F401  (the extractors, pypdf and pdfplumber with them)

Image.init()
