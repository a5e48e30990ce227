"""The isolated child: limits that hold, outcomes mapped to codes, a worker that survives."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from actors.extraction import ExtractLimits, child, extract_file
from actors.extraction.pool import POOL, fork_server
from actors.extraction.sandbox import ChildError, _outcome, _watch, run_isolated
from models.errors import FileRejected
from tests.actors.extraction import corpus
from tests.actors.extraction.children import announce_then_sleep
from tests.actors.extraction.pdf_factory import make_pdf

#: A 12000² bilevel PNG is 20 KB on disk, 144 MB once decoded; this pixel limit allows it.
BIG_PIXELS = 200_000_000


@pytest.fixture(scope="module")
def big_png() -> bytes:
    return corpus.bilevel_png(12_000)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_memory_limit_rejects_the_file_and_the_next_one_works(
    tmp_path: Path, out_dir: Path, big_png: bytes
) -> None:
    limits = ExtractLimits(memory_limit_mb=192, max_image_pixels=BIG_PIXELS)
    with pytest.raises(FileRejected) as caught:
        extract_file(write(tmp_path, "big.png", big_png), out_dir, limits)
    assert caught.value.code == "extraction_limit_exceeded"

    result = extract_file(write(tmp_path, "photo.jpg", corpus.photo("JPEG")), out_dir, limits)
    assert result.image is not None and result.image["width"] == 400


def test_wall_clock_limit_kills_the_child(tmp_path: Path, out_dir: Path, big_png: bytes) -> None:
    limits = ExtractLimits(time_limit_seconds=0.3, max_image_pixels=BIG_PIXELS)
    with pytest.raises(FileRejected) as caught:
        extract_file(write(tmp_path, "big.png", big_png), out_dir, limits)
    assert caught.value.code == "extraction_timeout"
    assert caught.value.details == {"time_limit_seconds": 0.3}


def test_within_its_limits_the_big_image_is_extracted(tmp_path: Path, out_dir: Path, big_png: bytes) -> None:
    limits = ExtractLimits(max_image_pixels=BIG_PIXELS)
    extraction, stats = run_isolated(write(tmp_path, "big.png", big_png), out_dir, limits)

    assert extraction.image is not None and extraction.image["mode"] == "1"
    assert {d.name: (d.width, d.height) for d in extraction.derivatives}["web"] == (2048, 2048)
    # The child decoded 144 MB of pixels; its peak RSS says so.
    assert stats.max_rss_kb > 144_000
    assert stats.cpu_seconds > 0 and stats.wall_seconds >= stats.cpu_seconds * 0.5


def test_out_dir_holds_only_the_derivatives(tmp_path: Path, out_dir: Path) -> None:
    result = extract_file(write(tmp_path, "doc", make_pdf([["Hello"]])), out_dir, ExtractLimits())

    assert sorted(p.name for p in out_dir.iterdir()) == [d.filename for d in result.derivatives] == ["text.txt"]


def test_concurrent_extractions_from_worker_threads(tmp_path: Path) -> None:
    """The caller runs in Dramatiq worker threads: children start safely from several at once."""
    files = {
        "a.pdf": make_pdf([["Alpha"], ["Beta"]]),
        "b.png": corpus.photo("PNG"),
        "c.gif": corpus.animated_gif(3),
        "d.jpg": corpus.photo("JPEG"),
    }

    def run(job: tuple[int, str]) -> tuple[str, str, int]:
        index, name = job
        out = tmp_path / f"out-{index}"
        out.mkdir()
        result = extract_file(write(tmp_path, f"{index}-{name}", files[name]), out, ExtractLimits())
        assert all(d.path.parent == out for d in result.derivatives)
        return name, result.kind, len(result.derivatives)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = sorted(pool.map(run, enumerate(sorted(files) * 2)))

    expected = [("a.pdf", "pdf", 1), ("b.png", "image", 3), ("c.gif", "image", 3), ("d.jpg", "image", 3)]
    assert outcomes == sorted(expected * 2)


# --- Warm children ---------------------------------------------------------------------------------


@pytest.fixture
def fresh_pool() -> Iterator[None]:
    POOL.clear()
    yield
    POOL.clear()


def pid_of(tmp_path: Path, name: str, data: bytes, limits: ExtractLimits) -> int:
    out = tmp_path / f"out-{name}"
    out.mkdir()
    _, stats = run_isolated(write(tmp_path, name, data), out, limits)
    return stats.pid


@pytest.mark.usefixtures("fresh_pool")
def test_a_child_extracts_files_per_child_files_then_is_replaced(tmp_path: Path) -> None:
    limits = ExtractLimits(files_per_child=2)
    pids = [pid_of(tmp_path, f"{i}.jpg", corpus.photo("JPEG"), limits) for i in range(3)]

    assert pids[0] == pids[1] != pids[2]
    assert pids[0] != 0


@pytest.mark.usefixtures("fresh_pool")
def test_a_child_started_ahead_of_time_takes_the_first_file(tmp_path: Path) -> None:
    POOL.warm(ExtractLimits())
    (warmed,) = [child.process.pid for child in POOL._idle]

    assert pid_of(tmp_path, "a.jpg", corpus.photo("JPEG"), ExtractLimits()) == warmed


@pytest.mark.usefixtures("fresh_pool")
def test_a_child_is_replaced_after_a_file_it_did_not_extract(tmp_path: Path, out_dir: Path) -> None:
    first = pid_of(tmp_path, "a.jpg", corpus.photo("JPEG"), ExtractLimits())
    with pytest.raises(FileRejected):
        extract_file(write(tmp_path, "broken.png", corpus.photo("PNG")[:200]), out_dir, ExtractLimits())

    assert pid_of(tmp_path, "b.jpg", corpus.photo("JPEG"), ExtractLimits()) != first


@pytest.mark.usefixtures("fresh_pool")
def test_an_idle_child_that_died_is_replaced(tmp_path: Path) -> None:
    first = pid_of(tmp_path, "a.jpg", corpus.photo("JPEG"), ExtractLimits())
    os.kill(first, signal.SIGKILL)
    time.sleep(0.1)  # let it die: the pool checks its exit code when it hands it out

    assert pid_of(tmp_path, "b.jpg", corpus.photo("JPEG"), ExtractLimits()) not in (0, first)


@pytest.mark.usefixtures("fresh_pool")
def test_children_are_confined_with_their_own_limits(tmp_path: Path, big_png: bytes, out_dir: Path) -> None:
    """A child confined with a larger memory limit is never handed a file whose limit is smaller."""
    roomy = ExtractLimits(memory_limit_mb=1024, max_image_pixels=BIG_PIXELS)
    tight = ExtractLimits(memory_limit_mb=192, max_image_pixels=BIG_PIXELS)
    pid_of(tmp_path, "a.jpg", corpus.photo("JPEG"), roomy)
    with pytest.raises(FileRejected) as caught:
        extract_file(write(tmp_path, "big.png", big_png), out_dir, tight)
    assert caught.value.code == "extraction_limit_exceeded"


@pytest.mark.usefixtures("fresh_pool")
def test_each_file_reports_its_own_peak(tmp_path: Path, big_png: bytes) -> None:
    limits = ExtractLimits(max_image_pixels=BIG_PIXELS)
    out = tmp_path / "big"
    out.mkdir()
    _, big = run_isolated(write(tmp_path, "big.png", big_png), out, limits)
    out = tmp_path / "small"
    out.mkdir()
    _, small = run_isolated(write(tmp_path, "small.jpg", corpus.photo("JPEG")), out, limits)

    assert small.pid == big.pid
    assert small.max_rss_kb < big.max_rss_kb - 100_000


# --- How a child's end is turned into an outcome -----------------------------------------------


def outcome(exitcode: int | None, reply: dict | None, out_dir: Path, *, timed_out: bool = False) -> None:
    _outcome(exitcode, "parse" if timed_out else None, reply, out_dir, ExtractLimits(time_limit_seconds=5), 0.1)


@pytest.mark.parametrize(
    ("exitcode", "timed_out", "code"),
    [
        (None, True, "extraction_timeout"),
        (-signal.SIGKILL, True, "extraction_timeout"),
        (-signal.SIGXCPU, False, "extraction_timeout"),
        (-signal.SIGKILL, False, "extraction_limit_exceeded"),
        (-signal.SIGSEGV, False, "extraction_crashed"),
        (-signal.SIGABRT, False, "extraction_crashed"),
    ],
)
def test_child_killed_by_a_signal(out_dir: Path, exitcode: int | None, timed_out: bool, code: str) -> None:
    with pytest.raises(FileRejected) as caught:
        outcome(exitcode, None, out_dir, timed_out=timed_out)
    assert caught.value.code == code


def test_child_reply_carries_the_files_rejection(out_dir: Path) -> None:
    reply = {"rejected": {"code": "too_many_pages", "message": "no", "details": {"page_count": 9}}}
    with pytest.raises(FileRejected) as caught:
        outcome(0, reply, out_dir)
    rejected = caught.value
    assert (rejected.code, rejected.message, rejected.details) == ("too_many_pages", "no", {"page_count": 9})


def test_out_of_memory_reply(out_dir: Path) -> None:
    with pytest.raises(FileRejected) as caught:
        outcome(0, {"limit_exceeded": True}, out_dir)
    assert caught.value.code == "extraction_limit_exceeded"


@pytest.mark.parametrize(
    ("exitcode", "reply"),
    [(0, {"error": "TypeError: a bug", "traceback": "..."}), (1, None), (0, None)],
)
def test_unexpected_failures_are_not_blamed_on_the_file(out_dir: Path, exitcode: int, reply: dict | None) -> None:
    with pytest.raises(ChildError):
        outcome(exitcode, reply, out_dir)


def derivative_reply(path: Path) -> dict:
    derivative = {"name": "web", "filename": "web.jpg", "content_type": "image/jpeg", "path": str(path)}
    return {"ok": {"kind": "image", "mime": "image/png", "derivatives": [derivative]}}


def test_derivative_outside_out_dir_is_refused(tmp_path: Path, out_dir: Path) -> None:
    secret = write(tmp_path, "settings.env", b"CHUTE_DATABASE_URL=postgresql://secret")
    link = out_dir / "web.jpg"
    link.symlink_to(secret)

    for path in (secret, link, out_dir / "missing.jpg"):
        with pytest.raises(FileRejected) as caught:
            outcome(0, derivative_reply(path), out_dir)
        assert caught.value.code == "extraction_crashed"


def test_nonsense_reply_is_refused(out_dir: Path) -> None:
    with pytest.raises(FileRejected) as caught:
        outcome(0, {"ok": {"kind": "image"}}, out_dir)
    assert caught.value.code == "extraction_crashed"


@pytest.mark.parametrize("isolation", [False, True])
def test_missing_input_is_the_callers_error(tmp_path: Path, out_dir: Path, isolation: bool) -> None:
    with pytest.raises(FileNotFoundError):
        extract_file(tmp_path / "nope.pdf", out_dir, ExtractLimits(isolation=isolation))
    with pytest.raises(FileNotFoundError):
        extract_file(write(tmp_path, "a.txt", b"hi"), tmp_path / "no-dir", ExtractLimits(isolation=isolation))


# --- Each phase gets its own time ----------------------------------------------------------------


def watched(announce: bytes, seconds: float, limits: ExtractLimits) -> tuple[str | None, float]:
    ctx = fork_server()
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(target=announce_then_sleep, args=(writer, announce, seconds), daemon=True)
    started = time.monotonic()
    process.start()
    writer.close()
    try:
        return _watch(process, reader, limits), time.monotonic() - started
    finally:
        reader.close()
        process.close()


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(child, "PHASE_GRACE_SECONDS", 0.2)


@pytest.mark.usefixtures("short_grace")
def test_an_announced_phase_gets_its_own_time() -> None:
    limits = ExtractLimits(time_limit_seconds=1, ocr_time_limit_seconds=30)
    # Parsing alone may not take 3 s; once the child says "ocr", it may.
    assert watched(b"", 3, limits)[0] == "parse"
    overran, _ = watched(b"ocr", 3, limits)
    assert overran is None


@pytest.mark.usefixtures("short_grace")
def test_a_phase_that_overruns_is_killed_with_its_code(out_dir: Path) -> None:
    limits = ExtractLimits(time_limit_seconds=1, tables_time_limit_seconds=0.3)
    overran, seconds = watched(b"tables", 30, limits)
    assert overran == "tables" and seconds < 10
    with pytest.raises(FileRejected) as caught:
        _outcome(-signal.SIGKILL, overran, None, out_dir, limits, seconds)
    assert caught.value.code == "tables_timeout"


@pytest.mark.usefixtures("short_grace")
def test_unknown_phase_names_give_no_time() -> None:
    limits = ExtractLimits(time_limit_seconds=1)
    assert watched(b"forever", 30, limits)[0] == "parse"
