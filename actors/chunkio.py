"""Reading an upload's staged chunks as one file, without composing a copy of it.

The assemble stage verifies the chunks in place and the upload stage streams them to the
store part by part straight from the chunk files: the bytes are read twice and never
written again.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models import staging
from models.settings import current_settings
from models.upload import ChunkEntry

#: Read size when hashing: large enough to amortise syscalls, small enough to stay in cache.
READ_SIZE = 1024 * 1024


@dataclass(frozen=True)
class ChunkFile:
    path: Path
    size: int


class ChunkedFile:
    """The ordered chunk files of an upload, read as one byte range."""

    def __init__(self, chunks: Sequence[ChunkFile]):
        self.chunks = list(chunks)
        self.starts: list[int] = []
        offset = 0
        for chunk in self.chunks:
            self.starts.append(offset)
            offset += chunk.size
        self.size = offset

    def read_at(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end), crossing chunk boundaries."""
        index = bisect.bisect_right(self.starts, offset) - 1
        if 0 <= index < len(self.chunks):
            chunk, within = self.chunks[index], offset - self.starts[index]
            if within + length <= chunk.size:  # inside one chunk (the usual case): no extra copy
                return self._read(chunk, within, length)
        out = bytearray()
        while length > 0 and 0 <= index < len(self.chunks):
            chunk = self.chunks[index]
            within = offset - self.starts[index]
            take = min(length, chunk.size - within)
            if take > 0:
                out += self._read(chunk, within, take)
                offset += take
                length -= take
            index += 1
        return bytes(out)

    @staticmethod
    def _read(chunk: ChunkFile, offset: int, length: int) -> bytes:
        with open(chunk.path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise OSError(f"{chunk.path} is shorter than its manifest says")
        return data

    def head(self, length: int = 4096) -> bytes:
        return self.read_at(0, min(length, self.size))


def staged_file(upload_id: str, chunks: Iterable[ChunkEntry]) -> ChunkedFile:
    """The upload's staged chunk files, in its manifest's order."""
    staging_dir = current_settings().staging_dir
    return ChunkedFile([ChunkFile(staging.chunk_path(staging_dir, upload_id, c.index), c.size) for c in chunks])
