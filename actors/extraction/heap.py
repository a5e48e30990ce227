"""glibc's heap in a sandbox child: an image's buffers freed after one file serve the next.

A decoded 1024×768 JPEG is a few MiB, and its derivatives a few more. Above glibc's mmap
threshold (1 MiB in chute's workers, whose children inherit it: ``web.cli.MALLOC_TUNING``) each
such buffer is mapped when allocated and unmapped when freed, so every file faulted its pages in
afresh: about 1,800 page faults, 2 ms of system time in a 9.5 ms JPEG. A child extracts one file
at a time, single-threaded, so keeping buffers up to :data:`REUSED_BYTES` in its heap between
files costs at most that much memory; larger ones (a big scan's pages) are still mapped and
returned, so a child's memory does not grow with the files it has seen.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: Buffers up to this size are allocated in the heap and kept there when freed (mmap threshold),
#: and at most this much free memory stays at the heap's top (trim threshold).
REUSED_BYTES = 8 * 1024 * 1024

#: ``mallopt`` parameters, from glibc's ``malloc.h``.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def reuse_freed_buffers(limit: int = REUSED_BYTES) -> bool:
    """Set this process's mmap and trim thresholds to ``limit``; False where that is not glibc's malloc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:  # another C library (musl): its allocator, its own behaviour
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, limit) == 1 and mallopt(_M_TRIM_THRESHOLD, limit) == 1
    if not done:
        log.warning("mallopt refused a threshold of %d bytes: image buffers are mapped for each file", limit)
    return done
