"""The front's raw relay (``web.front._relay``): gunicorn's answers pass through byte for byte,
framed by Content-Length, chunked encoding or no body at all (HEAD, 204), and both connections
stay usable: pipelined requests are answered in order on one client connection and one upstream
connection. A fake upstream on a Unix socket answers by path, in pieces cut at awkward places.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import services
from web.front import FrontConfig, _quick_head, run

MiB = 1 << 20
#: Answers by request path: the pieces the fake upstream sends, with a pause between them.
ANSWERS: dict[bytes, list[bytes]] = {
    b"/length": [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello", b" world"],
    b"/chunked": [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r",
        b"\nhello\r\n6;ext=1\r\n wo",
        b"rld\r\n0",
        b"\r\n\r\n",
    ],  # fmt: skip
    b"/head": [b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nUpload-Offset: 7\r\n\r\n"],
    b"/empty": [b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"],
    b"/closing": [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"],
}


class FakeUpstream:
    """A Unix socket server answering ``ANSWERS``; records every request head and connection."""

    def __init__(self, path: str):
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the front may close first (a stalled body)
            self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            self.heads.append(head)
            path = head.split(b" ")[1]
            if path == b"/v1/tus/upload":  # a body to take whole, or up to the front cutting it
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(buf) < length and (data := conn.recv(1 << 20)):
                    buf += data
                body, buf = buf[:length], buf[length:]
                self.bodies.append(body)
                conn.sendall(b"HTTP/1.1 204 No Content\r\nUpload-Offset: %d\r\n\r\n" % len(body))
                continue
            for piece in ANSWERS[path]:
                conn.sendall(piece)
                time.sleep(0.01)
            if path == b"/closing":
                return


@pytest.fixture
def front(tmp_path: Path) -> Iterator[tuple[int, FakeUpstream]]:
    upstream = FakeUpstream(str(tmp_path / "up.sock"))
    port = services.free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        await run(FrontConfig(str(tmp_path / "up.sock"), 5, 1, 1 << 30, max_streams=1), "127.0.0.1", port, stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    services.wait_until(lambda: services.port_open("127.0.0.1", port), 10, what="the front")
    yield port, upstream
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()
    upstream.sock.close()


def read_answers(sock: socket.socket, methods: list[bytes]) -> list[bytes]:
    """The answers to requests of these methods (heads and bodies), read with a client's framing rules."""
    buf, answers = b"", list[bytes]()
    for method in methods:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(4096)
            assert data, f"the front closed after {len(answers)} answers: {buf!r}"
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
        if method == b"HEAD" or head.startswith(b"HTTP/1.1 204 "):
            body = b""
        elif b"transfer-encoding" in headers:
            while b"0\r\n\r\n" not in buf:
                buf += sock.recv(4096)
            body, _, buf = buf.partition(b"0\r\n\r\n")
            body += b"0\r\n\r\n"
        else:
            length = int(headers.get(b"content-length", b"0"))
            while len(buf) < length:
                buf += sock.recv(4096)
            body, buf = buf[:length], buf[length:]
        answers.append(head + b"\r\n\r\n" + body)
    return answers


def test_pipelined_answers_pass_through_in_order_on_one_upstream_connection(
    front: tuple[int, FakeUpstream],
) -> None:
    port, upstream = front
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /length HTTP/1.1\r\nHost: x\r\n\r\nGET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"HEAD /head HTTP/1.1\r\nHost: x\r\n\r\nDELETE /empty HTTP/1.1\r\nHost: x\r\n\r\n")  # fmt: skip
    length, chunked, head, empty = read_answers(sock, [b"GET", b"GET", b"HEAD", b"DELETE"])
    assert length.endswith(b"\r\n\r\nhello world") and b"content-length: 11" in length.lower()
    assert chunked.endswith(b"\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
    assert b"transfer-encoding: chunked" in chunked.lower()
    assert b"content-length: 42" in head.lower() and head.endswith(b"\r\n\r\n")
    assert empty.startswith(b"HTTP/1.1 204 ")
    sock.sendall(b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")  # after a HEAD and a 204, still in step
    assert read_answers(sock, [b"GET"])[0].endswith(b"hello world")
    sock.close()
    assert upstream.connections == 1


def test_an_upstream_that_closes_is_replaced_and_the_client_kept(front: tuple[int, FakeUpstream]) -> None:
    port, upstream = front
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /closing HTTP/1.1\r\nHost: x\r\n\r\n")
    closing = read_answers(sock, [b"GET"])[0]
    assert closing.endswith(b"\r\n\r\nok") and b"connection" not in closing.lower()
    sock.sendall(b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_answers(sock, [b"GET"])[0].endswith(b"hello world")
    sock.close()
    assert upstream.connections == 2


def whole_answer(port: int, request: bytes) -> bytes:
    """Send ``request`` on a new connection and read until the front closes it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request)
    answer = b""
    while data := sock.recv(4096):
        answer += data
    sock.close()
    return answer


def test_a_client_that_asks_to_close_is_told_so_and_closed(front: tuple[int, FakeUpstream]) -> None:
    port, upstream = front
    for request in (b"GET /length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"GET /length HTTP/1.0\r\n\r\n"):
        answer = whole_answer(port, request)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nhello world")
        assert b"connection: close" in answer.lower()
    assert upstream.heads[-1].startswith(b"GET /length HTTP/1.0\r\n")  # gunicorn frames for a 1.0 client


def test_the_peer_header_is_the_fronts_own(front: tuple[int, FakeUpstream]) -> None:
    port, upstream = front
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /length HTTP/1.1\r\nHost: x\r\nX-Chute-Peer: 10.0.0.1\r\nConnection: keep-alive\r\n\r\n")
    read_answers(sock, [b"GET"])
    sock.close()
    lines = upstream.heads[-1].lower().split(b"\r\n")
    assert [line for line in lines if line.startswith(b"x-chute-peer")] == [b"x-chute-peer: 127.0.0.1"]
    assert not any(line.startswith(b"connection") for line in lines)


def test_a_plain_get_is_read_by_hand_and_anything_else_left_to_h11() -> None:
    head, rest = _quick_head(b"GET /v1/jobs/j?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization:  Bearer k \r\n\r\nGET /")  # type: ignore[misc]
    assert head == (b"GET", b"/v1/jobs/j?x=1", [(b"host", b"a"), (b"authorization", b"Bearer k")], b"1.1")
    assert rest == b"GET /"
    for data in (
        b"GET / HTTP/1.1\r\nHost: a\r\n",  # not all there yet
        b"GET / HTTP/1.1\r\n\r\n",  # no Host: h11 answers 400
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n",  # space before the colon
        b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",  # bare LF
        b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n",
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    ):
        assert _quick_head(data) is None, data


def test_what_h11_refuses_is_answered_400_by_the_front(front: tuple[int, FakeUpstream]) -> None:
    port, upstream = front
    for request in (b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n"):
        answer = whole_answer(port, request)
        assert answer.startswith(b"HTTP/1.1 400 ") and b'"bad_request"' in answer
    assert upstream.heads == []


def patch_head(size: int) -> bytes:
    return b"PATCH /v1/tus/upload HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Length: %d\r\n\r\n" % size


def test_a_streamed_body_goes_whole_and_the_next_request_after_it_is_read(front: tuple[int, FakeUpstream]) -> None:
    """Past its first MiB a body goes from socket to socket (``web.front_splice``), while the next
    request is already sent behind it: gunicorn gets exactly the body, the client both answers."""
    port, upstream = front
    body = os.urandom(5 * MiB + 123)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(patch_head(len(body)) + body + b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")
    patched, length = read_answers(sock, [b"PATCH", b"GET"])
    assert patched.startswith(b"HTTP/1.1 204 ") and b"upload-offset: %d" % len(body) in patched.lower()
    assert length.endswith(b"hello world")
    sock.close()
    assert upstream.bodies == [body]


def test_a_streamed_body_cut_off_reaches_gunicorn_cut_and_a_stalled_one_is_408(
    front: tuple[int, FakeUpstream],
) -> None:
    port, upstream = front
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(patch_head(4 * MiB) + b"x" * (2 * MiB))
    time.sleep(0.3)
    sock.close()
    services.wait_until(lambda: len(upstream.bodies) == 1, 10, what="the cut body")
    assert upstream.bodies == [b"x" * (2 * MiB)]  # a tus PATCH keeps what arrived
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(patch_head(4 * MiB) + b"x" * (2 * MiB))  # then nothing, past the 1 s stall limit
    answer = b""
    while data := sock.recv(4096):
        answer += data
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_spooled_body_read_in_pieces_is_passed_on_whole_and_the_next_request_read(
    front: tuple[int, FakeUpstream],
) -> None:
    """A body under a MiB is read whole first (past h11 once its head is parsed), then passed on."""
    port, upstream = front
    body = os.urandom(300 * 1024)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(patch_head(len(body)) + body[:1000])
    time.sleep(0.1)
    sock.sendall(body[1000:200_000])
    time.sleep(0.1)
    sock.sendall(body[200_000:] + b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")
    patched, length = read_answers(sock, [b"PATCH", b"GET"])
    assert b"upload-offset: %d" % len(body) in patched.lower() and length.endswith(b"hello world")
    sock.close()
    assert upstream.bodies == [body]
