"""Slow clients: ``chute web`` (its buffering front, then gunicorn with only two threads) keeps
answering /healthz and other tenants while 200 connections trickle bytes; a request whose body
or head stalls is answered 408 and dropped; a streamed response passes through unbuffered.

Loopback only and bounded: every socket has a timeout and the trickle stops when the test ends.
The latencies are printed (``pytest -s``), not asserted.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import services
from web.front import FrontConfig, run

#: Connections that trickle a request body, and connections that trickle a request head.
BODY_TRICKLERS, HEAD_TRICKLERS = 150, 50


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``chute web`` on SQLite with one gunicorn worker of two threads; yields (base URL, API key)."""
    root = tmp_path_factory.mktemp("front")
    env = services.chute_env(os.environ, database_url=f"sqlite:///{root}/chute.db", storage_url=f"file://{root}/obj",
                             staging_dir=str(root / "staging"), secret_key="front-test", metrics_dir=str(root / "m"),
                             web_body_stall_seconds="1.5", web_header_timeout_seconds="2",
                             rate_limit_anonymous="3/minute", rate_limit_write="2/minute")  # fmt: skip
    subprocess.run([sys.executable, "-m", "web.cli", "migrate"], env=env, cwd=services.REPO, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    key = services.issue_api_key(env, "patient")["api_key"]
    process, base = services.start_web(env, root, workers=1, threads=2)
    yield base, key
    process.stop()


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def timed_get(session: requests.Session, url: str, headers: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    response = session.get(url, headers=headers or {}, timeout=30)
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def test_200_trickling_connections_do_not_hold_healthz_or_other_tenants(web: tuple[str, str]) -> None:
    base, key = web
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    alone = [timed_get(session, base + "/healthz") for _ in range(20)]
    sockets: list[socket.socket] = []
    stop = threading.Event()
    try:
        for i in range(BODY_TRICKLERS):
            sock = connect(base)
            sock.sendall(f"PUT /v1/uploads/upl_{i}/chunks/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                         "Content-Length: 100000\r\n\r\n".encode())  # fmt: skip
            sockets.append(sock)
        for _ in range(HEAD_TRICKLERS):
            sock = connect(base)
            sock.sendall(b"GET /v1/jobs HTTP/1.1\r\n")
            sockets.append(sock)

        def trickle() -> None:  # a byte per connection every 0.5 s: under both stall limits
            while not stop.wait(0.5):
                for sock in sockets:
                    try:
                        sock.send(b"x" if sockets.index(sock) < BODY_TRICKLERS else b"X")
                    except OSError:
                        pass

        threading.Thread(target=trickle, daemon=True).start()
        time.sleep(1)  # every trickler is connected and sending
        loaded = [timed_get(session, base + "/healthz") for _ in range(20)]
        api = [timed_get(session, base + "/v1/jobs", headers) for _ in range(20)]
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
    print(f"\n/healthz median {statistics.median(alone) * 1000:.1f} ms alone, "
          f"{statistics.median(loaded) * 1000:.1f} ms beside {len(sockets)} trickling connections; "
          f"GET /v1/jobs median {statistics.median(api) * 1000:.1f} ms")  # fmt: skip


def test_the_front_answers_a_throttled_credential_itself(web: tuple[str, str]) -> None:
    """Once the app refused a credential's class of route, the front refuses it too until
    Retry-After, without passing the request on (its 429 has no RateLimit-Policy: the app's does)."""
    base, key = web
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    answers = [session.post(base + "/v1/uploads", json={"filename": "a", "size": 1}, headers=headers, timeout=30)
               for _ in range(4)]  # fmt: skip
    assert [a.status_code for a in answers] == [201, 201, 429, 429]
    by_app, by_front = answers[2], answers[3]
    assert "RateLimit-Policy" in by_app.headers and "RateLimit-Policy" not in by_front.headers
    assert by_front.json()["error"]["code"] == "rate_limited" and int(by_front.headers["Retry-After"]) >= 1
    assert "X-Chute-Throttle" not in by_app.headers  # the app's note to the front stays inside
    assert session.get(base + "/v1/jobs", headers=headers, timeout=30).status_code == 200  # reads are another class


def test_a_stalled_body_is_answered_408_and_dropped(web: tuple[str, str]) -> None:
    base, key = web
    sock = connect(base)
    sock.sendall(f"PUT /v1/uploads/upl_x/chunks/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                 "Content-Length: 1000\r\n\r\n0123456789".encode())  # fmt: skip
    assert read_status(sock) == 408
    while sock.recv(4096):  # then the front closes the connection
        pass
    sock.close()


def test_a_stalled_head_is_answered_408(web: tuple[str, str]) -> None:
    base, _ = web
    sock = connect(base)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert read_status(sock) == 408
    sock.close()


def test_the_client_address_reaches_the_app(web: tuple[str, str]) -> None:
    """The front passes the peer's address, ignoring one a client sends itself: requests without
    a key all count against 127.0.0.1 whatever they claim (3 a minute here)."""
    base, _ = web
    codes = [requests.get(base + "/v1/jobs", headers={"X-Chute-Peer": f"10.1.2.{i}"}, timeout=30).status_code
             for i in range(4)]  # fmt: skip
    assert codes == [401, 401, 401, 429]


def test_a_streamed_response_is_passed_on_unbuffered(tmp_path: Path) -> None:
    """An upstream that sends one event, then waits: the event reaches the client before the rest
    is sent (Server-Sent Events keep working behind the front)."""
    path = str(tmp_path / "up.sock")
    upstream = socket.socket(socket.AF_UNIX)
    upstream.bind(path)
    upstream.listen()
    release = threading.Event()

    def serve() -> None:
        conn, _ = upstream.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"d\r\ndata: first\n\n\r\n")  # fmt: skip
            release.wait(30)
            conn.sendall(b"d\r\ndata: later\n\n\r\n0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    port = services.free_port()
    stop: list[asyncio.Event] = []
    loop = asyncio.new_event_loop()

    async def main() -> None:
        stop.append(asyncio.Event())
        await run(FrontConfig(path, 5, 5, 1 << 20), "127.0.0.1", port, stop[0])

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    services.wait_until(lambda: services.port_open("127.0.0.1", port), 10, what="the front")
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        seen = b""
        while b"data: first" not in seen:
            chunk = sock.recv(4096)
            assert chunk, "the front closed the stream"
            seen += chunk
        assert b"data: later" not in seen
        release.set()
        while b"data: later" not in seen:
            seen += sock.recv(4096)
        sock.close()
    finally:
        release.set()
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(30)
        loop.close()
        upstream.close()
