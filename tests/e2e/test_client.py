"""``chute upload``, the resumable command-line client, against the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Stack
from tests.support.services import REPO
from tests.support.uploading import chunked_upload


def chute_upload(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHUTE_API_URL": stack.base_url, "CHUTE_API_KEY": stack.keys["api_key"]}
    return subprocess.run([sys.executable, "-m", "web.cli", "upload", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_upload_and_wait(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"from the command line\n" * 3000)
    result = chute_upload(stack, str(path), "--chunk-size", "16384", "--wait")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["status"] == "completed" and line["file"] == str(path)
    assert "100.0%" in result.stderr and "completed" in result.stderr


def test_resume_sends_only_the_missing_chunks(stack: Stack, tmp_path: Path) -> None:
    data = os.urandom(4096)
    path = tmp_path / "half.bin"
    path.write_bytes(data)
    out = chunked_upload(stack.call, data, filename="half.bin", chunk_size=1024, order=[0, 2], complete=False)
    result = chute_upload(stack, str(path), "--resume", out["upload_id"], "--wait")
    assert result.returncode == 0, result.stderr
    status, info = stack.call("GET", f"/v1/uploads/{out['upload_id']}")
    assert info["missing"] == [] and info["status"] == "complete"
    assert json.loads(result.stdout)["status"] == "completed"
