"""copy_body: a body goes to the staging file whole, and its sha256 (and the client's checksum) is
of exactly the bytes in the file, when it ends and when it is cut off, whatever pieces it is read in;
a long body's writes run behind its reads, one at a time and in order."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest
from werkzeug.exceptions import ClientDisconnected

from models.errors import StagingFull
from web import staging_io
from web.staging_io import HashingWriter, copy_body
from web.tus_protocol import Checksum
from web.tus_store import ChecksumWriter

#: Small blocks, so a body of a few hundred KB crosses many of them.
BLOCK = 100_000
DATA = os.urandom(1_234_567)


class Trickle(io.RawIOBase):
    """A body read into the caller's buffer in uneven pieces; cut off after ``cut`` bytes if given."""

    def __init__(self, data: bytes, cut: int | None = None):
        self.data, self.pos, self.cut = data, 0, cut
        self.sizes = iter([BLOCK, 7, 70_000, BLOCK, 1] * 1000)

    def readable(self) -> bool:
        return True

    def readinto(self, view: memoryview) -> int:  # type: ignore[override]
        if self.cut is not None and self.pos >= self.cut:
            raise ClientDisconnected()
        end = min(self.pos + len(view), self.pos + next(self.sizes), len(self.data), self.cut or len(self.data))
        count = end - self.pos
        view[:count] = self.data[self.pos : end]
        self.pos = end
        return count


class ReadOnly:
    """A body with ``read`` only (each block a fresh bytes object)."""

    def __init__(self, data: bytes):
        self.stream = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self.stream.read(size)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging_io, "COPY_SIZE", BLOCK)


def copied(writer: HashingWriter) -> bytes:
    writer.close()
    return writer.path.read_bytes()


@pytest.mark.parametrize("stream", [Trickle, ReadOnly, io.BytesIO])
def test_the_digest_is_of_the_bytes_written(tmp_path: Path, stream: type) -> None:
    writer = HashingWriter(tmp_path / "body.part")
    copy_body(stream(DATA), writer, len(DATA))
    assert copied(writer) == DATA
    assert writer.size == len(DATA) and writer.sha256 == hashlib.sha256(DATA).hexdigest()


def test_one_byte_past_the_limit_is_read(tmp_path: Path) -> None:
    writer = HashingWriter(tmp_path / "body.part")
    copy_body(Trickle(DATA), writer, 500_000)
    assert copied(writer) == DATA[:500_001]
    assert writer.size == 500_001 and writer.sha256 == hashlib.sha256(DATA[:500_001]).hexdigest()


def test_a_body_cut_off_keeps_a_digest_of_what_was_written(tmp_path: Path) -> None:
    writer = HashingWriter(tmp_path / "body.part")
    with pytest.raises(ClientDisconnected):
        copy_body(Trickle(DATA, cut=654_321), writer, len(DATA))
    assert copied(writer) == DATA[:654_321]
    assert writer.sha256 == hashlib.sha256(DATA[:654_321]).hexdigest()


def test_the_clients_checksum_is_of_the_same_bytes(tmp_path: Path) -> None:
    checksum = Checksum("sha1", hashlib.sha1(DATA).digest())
    writer = ChecksumWriter(tmp_path / "body.part", checksum)
    copy_body(Trickle(DATA), writer, len(DATA))
    assert copied(writer) == DATA
    assert writer.matches() and writer.sha256 == hashlib.sha256(DATA).hexdigest()


class SlowFullDisk(HashingWriter):
    """A staging file whose writes take a while, and whose disk fills at the ``full``-th write."""

    def __init__(self, path: Path, full: int | None = None):
        super().__init__(path)
        self.full, self.writes, self.busy = full, 0, threading.Lock()

    def write(self, data: bytes | memoryview) -> int:
        assert self.busy.acquire(blocking=False), "two writes at once"
        try:
            self.writes += 1
            time.sleep(0.01)
            if self.writes == self.full:
                with staging_io.staging_space():  # as the file's own write would raise it
                    raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)
        finally:
            self.busy.release()


def test_a_long_body_is_written_block_by_block_in_order_while_it_is_read(tmp_path: Path) -> None:
    writer = SlowFullDisk(tmp_path / "body.part")
    copy_body(io.BytesIO(DATA), writer, len(DATA))
    assert writer.writes == -(-len(DATA) // BLOCK)
    assert copied(writer) == DATA and writer.sha256 == hashlib.sha256(DATA).hexdigest()


def test_a_full_disk_met_by_a_write_behind_the_reads_is_raised(tmp_path: Path) -> None:
    writer = SlowFullDisk(tmp_path / "body.part", full=3)
    with pytest.raises(StagingFull):
        copy_body(io.BytesIO(DATA), writer, len(DATA))
    assert writer.writes == 3
    assert copied(writer) == DATA[: 2 * BLOCK]


def test_a_body_cut_off_leaves_no_write_running_after_the_copy(tmp_path: Path) -> None:
    writer = SlowFullDisk(tmp_path / "body.part")
    with pytest.raises(ClientDisconnected):
        copy_body(Trickle(DATA, cut=654_321), writer, len(DATA))
    assert writer.busy.acquire(blocking=False)  # the write in flight ended before the error was raised
    assert copied(writer) == DATA[:654_321]
