"""copy_body: a body goes to the staging file whole, and its sha256 (and the client's checksum) is
of exactly the bytes in the file, when it ends and when it is cut off, whatever pieces it is read in."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from werkzeug.exceptions import ClientDisconnected

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
