"""``chute upload``, the resumable command-line client, against the real stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Stack
from tests.support import services
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


def test_resume_refuses_a_different_file(stack: Stack, tmp_path: Path) -> None:
    data = os.urandom(4096)
    out = chunked_upload(stack.call, data, filename="right.bin", chunk_size=1024, order=[0], complete=False)
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(os.urandom(4096))  # same size, other bytes
    result = chute_upload(stack, str(wrong), "--resume", out["upload_id"])
    assert result.returncode == 1 and "SHA-256 differs" in result.stderr, result.stderr
    shorter = tmp_path / "short.bin"
    shorter.write_bytes(data[:1000])
    result = chute_upload(stack, str(shorter), "--resume", out["upload_id"])
    assert result.returncode == 1 and "not the same file" in result.stderr, result.stderr
    status, info = stack.call("GET", f"/v1/uploads/{out['upload_id']}")
    assert info["status"] == "receiving" and info["received"] == [0]  # nothing was sent


def test_ctrl_c_stops_without_a_traceback_and_says_how_to_resume(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "long.bin"
    path.write_bytes(os.urandom(64 * 1024))
    link = services.TcpProxy(int(stack.base_url.rsplit(":", 1)[1]))  # the client's way to the API, cut below
    env = {**os.environ, "CHUTE_API_URL": f"http://127.0.0.1:{link.port}", "CHUTE_API_KEY": stack.keys["api_key"]}
    argv = [sys.executable, "-m", "web.cli", "upload", str(path), "--chunk-size", "1024", "--parallel", "2"]
    client = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stderr is not None
        first = client.stderr.readline()  # "long.bin: upload upl_… (64 chunks; resume with --resume upl_…)"
        upload_id = first.split("upload ", 1)[1].split(" ", 1)[0]
        link.cut()  # the chunks now fail and are retried: the upload is mid-way when Ctrl-C comes
        services.wait_until(lambda: client.poll() is None, 5)
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=60)
    finally:
        link.close()
        if client.poll() is None:
            client.kill()
    assert client.returncode == 130, err
    assert "Traceback" not in err
    assert f"interrupted; send the rest with: chute upload {path} --resume {upload_id}" in err
    result = chute_upload(stack, str(path), "--resume", upload_id, "--wait")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
