"""Where staged bytes live on the disk shared by the web and the workers.

    {staging_dir}/uploads/{upload_id}/{index:06d}.chunk   received chunks
    {staging_dir}/work/{job_id}/                           scratch space of the extract stage
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def upload_dir(staging_dir: str | Path, upload_id: str) -> Path:
    return Path(staging_dir) / "uploads" / upload_id


def chunk_path(staging_dir: str | Path, upload_id: str, index: int) -> Path:
    return upload_dir(staging_dir, upload_id) / f"{index:06d}.chunk"


def work_dir(staging_dir: str | Path, job_id: str) -> Path:
    return Path(staging_dir) / "work" / job_id


def remove_upload(staging_dir: str | Path, upload_id: str) -> None:
    """Remove an upload's staged chunks; missing is fine (idempotent)."""
    shutil.rmtree(upload_dir(staging_dir, upload_id), ignore_errors=True)


def sync_upload(staging_dir: str | Path, upload_id: str) -> None:
    """fsync an upload's chunk files and their directory: the chunks survive a crash from here on."""
    directory = upload_dir(staging_dir, upload_id)
    if not directory.exists():
        return
    for path in directory.glob("*.chunk"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
