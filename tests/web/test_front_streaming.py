"""Upload bodies passed on as they arrive by ``chute web``'s front (web/front.py): a large chunk
is stored whole; an answer the app gives before reading the body reaches the client; a body that
stalls midway is answered 408 and nothing is stored; and slow uploads cannot take every thread.

gunicorn runs one worker with two API threads and one stream thread, so the front streams at most
one body at a time. Loopback only and bounded: every socket has a timeout, every trickle a stop.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support import services
from tests.web.test_front import read_status

MiB = 1024 * 1024
#: A body large enough to be streamed (the front streams past its first MiB).
SIZE = 3 * MiB


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """``chute web`` on SQLite, 1 worker × (2 API + 1 stream) threads; yields (base URL, auth headers)."""
    root = tmp_path_factory.mktemp("front-streaming")
    env = services.chute_env(os.environ, database_url=f"sqlite:///{root}/chute.db", storage_url=f"file://{root}/obj",
                             staging_dir=str(root / "staging"), secret_key="front-streaming",
                             metrics_dir=str(root / "m"), web_body_stall_seconds="1.5",
                             sse_max_streams="1")  # fmt: skip
    subprocess.run([sys.executable, "-m", "web.cli", "migrate"], env=env, cwd=services.REPO, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    key = services.issue_api_key(env, "streaming")["api_key"]
    process, base = services.start_web(env, root, workers=1, threads=2)
    yield base, {"Authorization": f"Bearer {key}"}
    process.stop()


def open_upload(base: str, headers: dict[str, str], size: int = SIZE) -> str:
    response = requests.post(base + "/v1/uploads", headers=headers, timeout=30,
                             json={"filename": "big.bin", "size": size, "chunk_size": size})  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["upload_id"])


def raw_put_head(base: str, key_headers: dict[str, str], upload_id: str, length: int) -> socket.socket:
    """A connection that has sent a chunk PUT's head, and no body yet."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"PUT /v1/uploads/{upload_id}/chunks/0 HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: {key_headers['Authorization']}\r\n"
                 f"Content-Length: {length}\r\n\r\n".encode())  # fmt: skip
    return sock


def test_a_large_chunk_is_streamed_and_stored_whole(web: tuple[str, dict[str, str]]) -> None:
    base, headers = web
    upload_id = open_upload(base, headers)
    data = os.urandom(SIZE)
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    response = requests.put(f"{base}/v1/uploads/{upload_id}/chunks/0", data=data, timeout=60,
                            headers={**headers, "Content-Digest": f"sha-256=:{digest}:"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json() == {"index": 0, "size": SIZE, "sha256": hashlib.sha256(data).hexdigest()}
    # The connection is kept alive and serves the next request.
    shown = requests.get(f"{base}/v1/uploads/{upload_id}", headers=headers, timeout=30).json()
    assert shown["received"] == [0] and shown["bytes_received"] == SIZE


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """``count`` whole responses of known length from ``sock``: [(status, body)]. Pipelined
    answers may arrive in one read: what follows one answer is the start of the next."""
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "the connection closed before an answer"
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(data) < length:
            data += sock.recv(65536)
        answers.append((int(head.split(b" ", 2)[1]), data[:length]))
        data = data[length:]
    return answers


def test_the_connection_serves_the_next_request_after_a_streamed_body(web: tuple[str, dict[str, str]]) -> None:
    """The front passes most of a streamed body on past its HTTP parser: the client's connection
    still serves the next request, sent on it at once after the body (pipelined)."""
    base, headers = web
    upload_id = open_upload(base, headers)
    with raw_put_head(base, headers, upload_id, SIZE) as sock:
        sock.sendall(os.urandom(SIZE) + f"GET /v1/uploads/{upload_id} HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: {headers['Authorization']}\r\n\r\n".encode())  # fmt: skip
        (put_status, _), (get_status, body) = read_responses(sock, 2)
        assert put_status == 200
        assert get_status == 200 and b'"received":[0]' in body.replace(b" ", b"")


def test_an_answer_before_the_body_is_read_reaches_the_client(web: tuple[str, dict[str, str]]) -> None:
    """The app answers 404 without reading the body: the front reads the rest and drops it, so
    the client, still sending, hears the 404 rather than a reset connection."""
    base, headers = web
    response = requests.put(f"{base}/v1/uploads/upl_{'0' * 24}/chunks/0", data=os.urandom(SIZE), headers=headers,
                            timeout=60)  # fmt: skip
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "upload_not_found"


def test_a_streamed_body_that_stalls_is_408_and_nothing_is_stored(web: tuple[str, dict[str, str]]) -> None:
    base, headers = web
    upload_id = open_upload(base, headers)
    sock = raw_put_head(base, headers, upload_id, SIZE)
    sock.sendall(os.urandom(2 * MiB))  # past the front's first MiB: passed on, then nothing more
    assert read_status(sock) == 408
    sock.close()
    shown = requests.get(f"{base}/v1/uploads/{upload_id}", headers=headers, timeout=30).json()
    assert shown["received"] == [] and shown["bytes_received"] == 0


def test_slow_uploads_never_hold_every_thread(web: tuple[str, dict[str, str]]) -> None:
    """Three uploads that send their first 1.5 MiB at once, then a byte every half second (under
    the stall limit), beside two API threads and one stream thread: one body streams, the others
    are spooled by the front, and /healthz and the API keep answering."""
    base, headers = web
    stop = threading.Event()
    sockets = [raw_put_head(base, headers, open_upload(base, headers), SIZE) for _ in range(3)]

    def trickle() -> None:
        for sock in sockets:
            sock.sendall(os.urandom(MiB + MiB // 2))
        while not stop.wait(0.5):
            for sock in sockets:
                sock.sendall(b"x")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(1.0)  # every trickler is past its first MiB
        for _ in range(5):
            assert requests.get(base + "/healthz", timeout=10).status_code == 200
            assert requests.get(base + "/v1/jobs", headers=headers, timeout=10).status_code == 200
    finally:
        stop.set()
        trickler.join(10)
        for sock in sockets:
            sock.close()
