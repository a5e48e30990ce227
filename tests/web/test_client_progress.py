"""``chute upload``'s progress line: rate from this run's bytes only, an ETA, and no stray characters."""

from __future__ import annotations

import io
import os
import time

import pytest

from web.client import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rate_counts_only_the_bytes_this_run_sent() -> None:
    out = io.StringIO()
    progress = Progress("big.bin", 10_000_000, out, already=9_000_000)  # resumed: 90 % was on the server
    progress.started = time.monotonic() - 1.0
    progress.add(1_000_000)
    line = out.getvalue().strip()
    assert "100.0%" in line and "   1.0 MB/s" in line  # not 10 MB/s
    assert line.endswith("in 0:01")


def test_eta_from_the_rate_so_far() -> None:
    progress = Progress("f", 10_000_000, io.StringIO())
    progress.done = 2_500_000
    now = progress.started + 2.0  # 1.25 MB/s: 6 s for the 7.5 MB left
    assert progress.line(now).endswith("1.2 MB/s ETA 0:06")
    progress.done = 0
    assert progress.line(now).endswith("ETA --:--")


def test_a_terminal_line_is_cleared_and_cut_to_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=(80, 24): os.terminal_size((40, 24)))
    out = Terminal()
    progress = Progress("a-rather-long-file-name.pdf", 100, out)
    progress.add(100)
    progress.finish()
    written = out.getvalue()
    assert written.startswith("\r") and written.endswith("\x1b[K\n")
    assert len(written[1:].split("\x1b[K")[0]) == 39  # never wider than the window: no wrapped rows


def test_lines_are_throttled_but_the_last_one_is_always_written() -> None:
    out = io.StringIO()
    progress = Progress("f", 1000, out)
    for _ in range(10):
        progress.add(100)
    lines = out.getvalue().splitlines()
    assert len(lines) <= 2 and "100.0%" in lines[-1]
