"""What parsers written in Python raise when a malformed file trips them, besides their own errors.

pypdf, pdfminer and Pillow index, unpack, decode and recurse over attacker-shaped input; a
broken file surfaces as any of these. Each extractor adds its library's own error classes.
"""

from __future__ import annotations

import struct
import zlib

#: The errors of malformed input common to every pure-Python parser we use.
MALFORMED_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    AssertionError,
    RecursionError,
    OverflowError,
    ZeroDivisionError,
    struct.error,
    zlib.error,
    UnicodeError,
    Warning,
)
