"""Where extract gets the file's bytes: the staged chunks on this machine, else the object store.

The upload stage leaves the chunks of a file extract will parse (a PDF or an image) on the
staging disk, and extract removes them once it is done; downloading the original back from the
store moments after it was sent there cost a round trip of the whole file. The chunks are
linked (one chunk, the usual case) or joined (several) into the run's scratch directory, which
the run owns: a cancel that removes the upload's directory meanwhile cannot pull the file from
under the parser. They are used only if their size and sha256 are the ones assemble verified,
so what is extracted is what was stored. Where they are gone (a retry on another machine, a
cleaned staging disk) or do not match, the original is downloaded from the store as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from actors.chunkio import READ_SIZE, ChunkedFile
from actors.storage import ObjectStore

log = logging.getLogger(__name__)

#: Where :func:`fetch_source` found the bytes.
STAGED, STORE = "staged", "store"


def fetch_source(
    store: ObjectStore, key: str, staged: ChunkedFile, size: int | None, sha256: str | None, dest: Path
) -> str:
    """Put the job's file at ``dest``, from its ``staged`` chunks if they are intact, else from ``key``.

    Returns:
        :data:`STAGED` or :data:`STORE`.

    Raises:
        Whatever the store raises when the download fails.
    """
    if size is not None and sha256 and _from_staging(staged, size, sha256, dest):
        return STAGED
    dest.unlink(missing_ok=True)
    store.download_to(key, dest)
    return STORE


def _from_staging(staged: ChunkedFile, size: int, sha256: str, dest: Path) -> bool:
    """Link or join the chunks into ``dest``; False (and nothing at ``dest``) unless they are the file."""
    chunks = [chunk.path for chunk in staged.chunks]
    if not chunks or staged.size != size:  # the manifest is not the verified file's (never after assemble)
        return False
    try:
        if len(chunks) == 1:
            _link(chunks[0], dest)
            digest, length = _hash(dest)
        else:
            digest, length = _join(chunks, dest)
    except OSError:  # removed meanwhile (a cancel), or unreadable: the store has it
        dest.unlink(missing_ok=True)
        return False
    if length != size or digest != sha256.lower():
        log.warning("the staged copy in %s is not the verified file; downloading it instead", chunks[0].parent)
        dest.unlink(missing_ok=True)
        return False
    return True


def _link(source: Path, dest: Path) -> None:
    """A hard link (no bytes copied), or a copy where the scratch space is on another filesystem."""
    try:
        os.link(source, dest)
    except OSError:  # EXDEV, or a filesystem without hard links
        shutil.copyfile(source, dest)


def _hash(path: Path) -> tuple[str, int]:
    digest, length = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while block := fh.read(READ_SIZE):
            digest.update(block)
            length += len(block)
    return digest.hexdigest(), length


def _join(chunks: list[Path], dest: Path) -> tuple[str, int]:
    """Write the chunks one after the other into ``dest``, hashing what is written."""
    digest, length = hashlib.sha256(), 0
    with open(dest, "wb") as out:
        for chunk in chunks:
            with open(chunk, "rb") as fh:
                while block := fh.read(READ_SIZE):
                    digest.update(block)
                    out.write(block)
                    length += len(block)
    return digest.hexdigest(), length
