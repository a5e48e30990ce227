"""Where staged bytes live on the disk shared by the web and the workers.

    {staging_dir}/uploads/{upload_id}/{index:06d}.chunk   received chunks
    {staging_dir}/work/{job_id}/{run_id}/                  scratch space of one extract run
    {staging_dir}/incoming/                                bodies of POST /v1/jobs being received
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

#: Kinds of file the extract stage parses: their staged chunks are kept until the job is
#: extracted (extract reads them instead of downloading the original back); others' go once stored.
EXTRACTED_KINDS: frozenset[str] = frozenset({"pdf", "image"})


def upload_dir(staging_dir: str | Path, upload_id: str) -> Path:
    return Path(staging_dir) / "uploads" / upload_id


def chunk_path(staging_dir: str | Path, upload_id: str, index: int) -> Path:
    return upload_dir(staging_dir, upload_id) / f"{index:06d}.chunk"


def work_dir(staging_dir: str | Path, job_id: str) -> Path:
    return Path(staging_dir) / "work" / job_id


def run_dir(staging_dir: str | Path, job_id: str, run_id: str) -> Path:
    """Scratch space of one run: two runs of one job (a duplicate delivery) never share it."""
    return work_dir(staging_dir, job_id) / run_id


def staging_root(staging_dir: str | Path) -> Path:
    return Path(staging_dir)


def staged_uploads(root: Path) -> list[str]:
    """Ids of the uploads that have a directory of staged chunks."""
    directory = root / "uploads"
    return [p.name for p in directory.iterdir() if p.is_dir()] if directory.is_dir() else []


def work_dirs(root: Path) -> list[str]:
    """Ids of the jobs that have extract scratch space."""
    directory = root / "work"
    return [p.name for p in directory.iterdir() if p.is_dir()] if directory.is_dir() else []


def idle_for(path: Path, seconds: float) -> bool:
    """Whether ``path`` exists and has not changed for ``seconds``."""
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def remove_upload(staging_dir: str | Path, upload_id: str) -> None:
    """Remove an upload's staged chunks; missing is fine (idempotent)."""
    shutil.rmtree(upload_dir(staging_dir, upload_id), ignore_errors=True)


def sync_upload(staging_dir: str | Path, upload_id: str) -> None:
    """fsync an upload's chunk files, their directory and its entry in ``uploads/``: from here on
    the chunks survive a crash under the names the job reads (a file's own fsync does not make
    its name durable, nor a new directory's)."""
    directory = upload_dir(staging_dir, upload_id)
    if not directory.exists():
        return
    for path in directory.glob("*.chunk"):
        _fsync(path)
    _fsync(directory)
    _fsync(directory.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
