"""Reading an upload's chunk files as one file, at any offset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actors.chunkio import ChunkedFile, ChunkFile


@pytest.fixture
def chunked(tmp_path: Path) -> tuple[ChunkedFile, bytes]:
    data = os.urandom(1000)
    files = []
    for index, (start, end) in enumerate(((0, 300), (300, 600), (600, 1000))):
        path = tmp_path / f"{index}.chunk"
        path.write_bytes(data[start:end])
        files.append(ChunkFile(path, end - start))
    return ChunkedFile(files), data


@pytest.mark.parametrize("offset,length", [(0, 300), (10, 50), (290, 20), (250, 500), (0, 1000), (900, 500), (999, 1)])
def test_read_at_matches_the_whole_file(chunked: tuple[ChunkedFile, bytes], offset: int, length: int) -> None:
    file, data = chunked
    assert file.size == 1000
    assert file.read_at(offset, length) == data[offset : offset + length]


def test_a_short_chunk_file_is_an_error(chunked: tuple[ChunkedFile, bytes]) -> None:
    file, _ = chunked
    file.chunks[1].path.write_bytes(b"short")
    with pytest.raises(OSError, match="shorter"):
        file.read_at(300, 100)
