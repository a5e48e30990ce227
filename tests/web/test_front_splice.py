"""web.front_splice: the rest of a streamed body moves from the client's socket to gunicorn's in
the kernel: exactly its bytes (a next request stays unread), what came before a cut reaches
gunicorn, a stall is a TimeoutError, a gunicorn that closed gets nothing and the body is still
read, and a cancelled move ends its thread and closes its descriptors."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from web.front_splice import pass_body

MiB = 1024 * 1024
BODY = os.urandom(5 * MiB + 12345)
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"

pytestmark = pytest.mark.skipif(not hasattr(os, "splice"), reason="splice(2) is Linux's")


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, socket.socket]]:
    """(client, front's side of it over TCP, front's side of gunicorn, gunicorn) as the front has them."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    front_up, gunicorn = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for sock in (accepted, front_up):
        sock.setblocking(False)  # as asyncio's transports keep them
    for sock in (client, gunicorn):
        sock.settimeout(30)
    yield client, accepted, front_up, gunicorn
    for sock in (client, accepted, front_up, gunicorn):
        sock.close()


def receive(sock: socket.socket, into: bytearray) -> threading.Thread:
    def run() -> None:
        while chunk := sock.recv(MiB):
            into.extend(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_exactly_the_body_passes_and_the_next_request_stays(sockets: tuple[socket.socket, ...]) -> None:
    client, accepted, front_up, gunicorn = sockets
    got = bytearray()
    receiver = receive(gunicorn, got)
    sender = threading.Thread(target=client.sendall, args=(BODY + NEXT,), daemon=True)
    sender.start()
    asyncio.run(pass_body(accepted, front_up, len(BODY), 5.0, True))
    front_up.shutdown(socket.SHUT_WR)
    receiver.join(30)
    sender.join(30)
    assert bytes(got) == BODY
    accepted.setblocking(True)
    assert accepted.recv(len(NEXT), socket.MSG_WAITALL) == NEXT


def test_what_came_before_the_client_went_away_reaches_gunicorn(sockets: tuple[socket.socket, ...]) -> None:
    client, accepted, front_up, gunicorn = sockets
    got = bytearray()
    receiver = receive(gunicorn, got)
    client.sendall(BODY[: 3 * MiB])
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionError):
        asyncio.run(pass_body(accepted, front_up, len(BODY), 5.0, True))
    front_up.shutdown(socket.SHUT_WR)
    receiver.join(30)
    assert bytes(got) == BODY[: 3 * MiB]


def test_a_client_that_stalls_is_a_timeout(sockets: tuple[socket.socket, ...]) -> None:
    client, accepted, front_up, gunicorn = sockets
    client.sendall(BODY[:1000])
    with pytest.raises(TimeoutError):
        asyncio.run(pass_body(accepted, front_up, len(BODY), 0.3, True))


def test_a_gunicorn_that_closed_gets_nothing_and_the_body_is_still_read(sockets: tuple[socket.socket, ...]) -> None:
    client, accepted, front_up, gunicorn = sockets
    gunicorn.close()
    sender = threading.Thread(target=client.sendall, args=(BODY + NEXT,), daemon=True)
    sender.start()
    asyncio.run(pass_body(accepted, front_up, len(BODY), 5.0, True))
    sender.join(30)
    accepted.setblocking(True)
    assert accepted.recv(len(NEXT), socket.MSG_WAITALL) == NEXT


def test_a_cancelled_move_ends_its_thread_and_closes_what_it_opened(sockets: tuple[socket.socket, ...]) -> None:
    client, accepted, front_up, gunicorn = sockets
    fds, threads = open_fds(), threading.active_count()

    async def cancelled() -> None:
        move = asyncio.create_task(pass_body(accepted, front_up, len(BODY), 30.0, True))
        await asyncio.sleep(0.2)
        move.cancel()
        with pytest.raises(asyncio.CancelledError):
            await move

    asyncio.run(cancelled())
    assert open_fds() == fds and threading.active_count() == threads
