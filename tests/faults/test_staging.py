"""The staging disk: bytes changed after assemble, duplicate stage deliveries, leftovers, a full
disk, expiry, and clients that go away mid-upload."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pika

from tests.faults.conftest import FaultStack
from tests.faults.history import History
from tests.support import services
from tests.support.files import sample_pdf
from tests.support.uploading import content_digest


def test_bytes_changed_after_assemble_are_not_stored(stack: FaultStack, history: History) -> None:
    """Finding 6: a staged chunk changes on disk after assemble verified it (S3 is down, so the
    job waits in upload): the upload stage hashes what it sends and fails the job instead of
    storing other bytes than the client's."""
    stack.proxy.cut()
    try:
        out = stack.upload(history, os.urandom(200_000), "flipped.bin", expect=("failed",),
                           error_code="checksum_mismatch")  # fmt: skip
        services.wait_until(lambda: stack.job_row(out["job_id"])["assembled_at"], 60, what="assemble")
        chunk = stack.staging_dir / "uploads" / out["upload_id"] / "000001.chunk"
        data = bytearray(chunk.read_bytes())
        data[100] ^= 0xFF
        chunk.write_bytes(bytes(data))
        # S3 stays away a while: a send already under way (its bytes read before the change)
        # fails, and the stage's next try reads the changed bytes.
        time.sleep(3)
    finally:
        stack.proxy.restore()
    assert stack.check(history) == []


def _publish(stack: FaultStack, actor: str, job_id: str) -> None:
    """Send one more message for a stage, as a re-send or a redelivery would."""
    message = dramatiq.Message(queue_name=f"chute.{actor}", actor_name=actor, args=(job_id,), kwargs={}, options={})
    connection = pika.BlockingConnection(pika.URLParameters(stack.rabbit.url))
    try:
        connection.channel().basic_publish(exchange="", routing_key=f"chute.{actor}", body=message.encode(),
                                           properties=pika.BasicProperties(delivery_mode=2))  # fmt: skip
    finally:
        connection.close()


def test_duplicate_extract_runs_do_not_collide(stack: FaultStack, history: History) -> None:
    """Finding 7: two more extract messages for a job whose extract is running (S3 is slow): the
    runs work in directories of their own, and the losers do not fail the finished job."""
    stack.proxy.slow(0.02)
    out = stack.upload(history, sample_pdf(20), "twice.pdf")
    services.wait_until(lambda: stack.job_row(out["job_id"])["stage"] == "extract", 60, interval=0.02,
                        what="extract")  # fmt: skip
    _publish(stack, "extract", out["job_id"])
    _publish(stack, "extract", out["job_id"])
    stack.proxy.slow(0)
    assert stack.check(history) == []


def test_a_redelivered_upload_and_cleanup_leave_no_staged_bytes(stack: FaultStack, history: History) -> None:
    """Finding 7: a worker that crashed right after storing a file leaves its staged chunks; the
    redelivered upload message, or else the sweeper (as ``chute cleanup``), removes them."""
    first = stack.upload(history, os.urandom(30_000), "left-1.bin")
    second = stack.upload(history, os.urandom(30_000), "left-2.bin")
    assert stack.check(history) == []
    for out in (first, second):  # what the crash leaves behind
        directory = stack.staging_dir / "uploads" / out["upload_id"]
        directory.mkdir(parents=True)
        (directory / "000000.chunk").write_bytes(b"left behind")
    _publish(stack, "upload", first["job_id"])
    subprocess.run([*_chute(), "cleanup"], env=stack.env, check=True, capture_output=True, timeout=60)
    assert stack.check(history) == []


def _chute() -> list[str]:
    import sys

    return [sys.executable, "-m", "web.cli"]


def test_a_full_staging_disk_is_507(stack: FaultStack, tmp_path: Path) -> None:
    """Finding 9: the staging disk full answers 507 with Retry-After (a 1 MiB tmpfs under a
    second API process), not 500."""
    mount = tmp_path / "staging"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True, timeout=30)
    web = None
    try:
        env = {**stack.env, "CHUTE_STAGING_DIR": str(mount)}
        web, base_url = services.start_web(env, tmp_path, workers=1, threads=2)
        auth = {"Authorization": f"Bearer {stack.keys['api_key']}"}
        import requests

        created = requests.post(base_url + "/v1/uploads", json={"filename": "big.bin", "size": 2 * 1024 * 1024,
                                "chunk_size": 1024 * 1024}, headers=auth, timeout=30).json()  # fmt: skip
        chunk = os.urandom(1024 * 1024)
        answers = [requests.put(f"{base_url}/v1/uploads/{created['upload_id']}/chunks/{i}", data=chunk,
                                headers={**auth, "Content-Digest": content_digest(chunk)}, timeout=30)
                   for i in range(2)]  # fmt: skip
        full = [a for a in answers if a.status_code != 200]
        assert full and full[0].status_code == 507, [a.text for a in answers]
        assert full[0].json()["error"]["code"] == "insufficient_storage"
        assert int(full[0].headers["Retry-After"]) > 0
        batch = requests.post(base_url + "/v1/jobs", files={"file": ("b.bin", os.urandom(1536 * 1024))},
                              headers=auth, timeout=30)  # fmt: skip
        assert batch.status_code == 507, batch.text
    finally:
        if web is not None:
            web.stop()
        subprocess.run(["umount", str(mount)], check=False, timeout=30)


def test_an_expired_upload_is_410_and_its_chunks_go(stack: FaultStack, history: History) -> None:
    """Finding 9 (410 Gone for an expired upload) and TTL expiry (held): the sweeper expires it
    and removes its chunks."""
    out = stack.upload(history, os.urandom(2_000), "expired.bin", chunk_size=1024, complete=False)
    stack.sql("UPDATE uploads SET expires_at = %s WHERE id = %s", datetime.now(UTC) - timedelta(seconds=1),
              out["upload_id"])  # fmt: skip
    status, body = stack.call("PUT", f"/v1/uploads/{out['upload_id']}/chunks/0", data=b"x" * 1024)
    assert status == 410 and body["error"]["code"] == "upload_expired", body
    status, body = stack.call("POST", f"/v1/uploads/{out['upload_id']}/complete")
    assert status == 410, body
    directory = stack.staging_dir / "uploads" / out["upload_id"]
    services.wait_until(lambda: not directory.exists(), 30, what="the expired upload's chunks to go")


def test_cancel_mid_upload_and_a_client_that_goes_away(stack: FaultStack, history: History) -> None:
    """Held: an upload cancelled between chunks, and a chunk whose client disconnects mid-body
    (nothing is kept; the client sends it again and completes)."""
    cancelled = stack.upload(history, os.urandom(4_096), "cancel.bin", chunk_size=1024, complete=False)
    status, body = stack.call("DELETE", f"/v1/uploads/{cancelled['upload_id']}")
    assert status == 202 and body["status"] == "cancelled", body
    assert not (stack.staging_dir / "uploads" / cancelled["upload_id"]).exists()

    data = os.urandom(8_192)
    out = stack.upload(history, data, "reconnect.bin", chunk_size=4096, complete=False)
    host, port = stack.base_url.removeprefix("http://").split(":")
    with contextlib.closing(socket.create_connection((host, int(port)), timeout=10)) as sock:
        sock.sendall(f"PUT /v1/uploads/{out['upload_id']}/chunks/0 HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Bearer {stack.keys['api_key']}\r\nContent-Length: 4096\r\n\r\n".encode()
                     + data[:1000])  # fmt: skip
    status, body = stack.call("PUT", f"/v1/uploads/{out['upload_id']}/chunks/0", data=data[:4096],
                              headers={"Content-Digest": content_digest(data[:4096])})  # fmt: skip
    assert status == 200, body
    status, body = stack.call("POST", f"/v1/uploads/{out['upload_id']}/complete")
    assert status == 202, body
    history.record(body["job_id"], out["upload_id"], data)
    assert stack.check(history) == []
