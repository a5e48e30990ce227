"""A sandbox child keeps the buffers one file frees for the next, instead of faulting them in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Allocates and frees a 4 MiB buffer (an image's size) 20 times, before and after
#: ``reuse_freed_buffers``, and prints the minor page faults of each series.
PROBE = """
import json, resource
from actors.extraction.heap import reuse_freed_buffers

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        buffer = bytearray(4 * 1024 * 1024)  # zero-filled: every page is touched
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

mapped = faults()
applied = reuse_freed_buffers()
faults()  # the first allocation after the change grows the heap once
print(json.dumps({"mapped": mapped, "applied": applied, "reused": faults()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and Linux's fault counts")
def test_buffers_freed_after_one_file_are_reused_by_the_next() -> None:
    # As a worker's child inherits it (web.cli.MALLOC_TUNING): buffers over 1 MiB are mapped.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1024 * 1024)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    counts = json.loads(out.stdout)
    assert counts["applied"] is True
    # Mapped afresh, each 4 MiB buffer faults its 1,024 pages in again; kept in the heap, none.
    assert counts["mapped"] >= 20 * 1000
    assert counts["reused"] < 100
