"""The rest of a streamed upload body, moved from the client's socket to gunicorn's by splice(2).

Passed through the front's event loop, every block of a body was received into a fresh bytes
object, written on, often only in part (the rest copied into the transport's buffer), and
paused and resumed around gunicorn's pace: 0.6–0.9 ms of the front's CPU per MiB, most of it
Python. Here a thread of the body's own moves the bytes through a pipe inside the kernel
(``splice``: the client's socket into the pipe, the pipe into gunicorn's socket), waiting on
both sockets with ``poll``; the bytes never enter the process, and the event loop does nothing
until the body has passed.

The rules are those of the event loop's relay: exactly the body's bytes are taken from the
client (a next request on the connection stays unread); reading waits while gunicorn has not
taken what the pipe holds (backpressure); the stall limit runs while waiting for the client
only; once gunicorn stops taking bytes (it answered early and closed), the rest of the body is
read and dropped; and what the client sent before going away reaches gunicorn before the cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import threading
import time
from typing import Protocol

#: Bytes the pipe between the two sockets holds (Linux's default is 64 KiB).
PIPE_SIZE = 1024 * 1024
#: Bytes gathered in the pipe before they go on while the client keeps sending: gunicorn's
#: thread wakes once per move, and moves of each TCP read (tens of KiB) woke it too often.
FLUSH_SIZE = 256 * 1024
#: fcntl commands to size a pipe (Linux; not all of them are named in Python's fcntl).
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
#: Whether this platform has splice(2) (Linux); elsewhere the front spools upload bodies whole.
AVAILABLE = hasattr(os, "splice")
READABLE = select.POLLIN | select.POLLPRI
WRITABLE = select.POLLOUT


class Socket(Protocol):
    """A socket as a transport's ``get_extra_info("socket")`` gives it."""

    def fileno(self) -> int: ...


class _Move:
    """One body's move, run by :meth:`run` on a thread of its own (``pass_body``)."""

    def __init__(self, client: Socket, upstream: Socket, remaining: int, stall: float,
                 passing: bool):  # fmt: skip
        self.remaining, self.stall, self.passing = remaining, stall, passing
        self.error: BaseException | None = None
        self.fds: list[int] = []
        try:
            # Copies of the descriptors: the sockets stay open for this thread whatever the event
            # loop does with its own, so a descriptor number can never name another connection here.
            self.client = self._own(os.dup(client.fileno()))
            self.upstream = self._own(os.dup(upstream.fileno()))
            self.stop_read, self.stop_write = (self._own(fd) for fd in os.pipe())
        except OSError:
            self.close()
            raise

    def _own(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def run(self, done: asyncio.Future[None]) -> None:
        try:
            self._move()
        except BaseException as e:  # noqa: BLE001 (handed to the event loop, which raises it)
            self.error = e
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            done.get_loop().call_soon_threadsafe(_settle, done, self.error)

    def stop(self) -> None:
        """Ask the thread to end now (its caller was cancelled)."""
        with contextlib.suppress(OSError):
            os.write(self.stop_write, b"x")

    def _move(self) -> None:
        """Raises ConnectionError (the client went away), TimeoutError (it stalled)."""
        pipe_out, pipe_in = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):  # an unprivileged process may be held to less
                fcntl.fcntl(pipe_in, F_SETPIPE_SZ, PIPE_SIZE)
            room = fcntl.fcntl(pipe_in, F_GETPIPE_SZ)
            held = 0  # bytes in the pipe
            full = False  # it took nothing though not at ``room``: its slots are pages, or parts of them
            cut: str | None = None  # why the client's side ended early
            last = time.monotonic()  # when the client last sent something, or gunicorn took some
            poller = select.poll()
            poller.register(self.stop_read, READABLE)
            while (self.remaining and cut is None) or held:
                reading = bool(self.remaining) and cut is None and held < room and not full
                writing = held > 0 and self.passing
                if reading:
                    poller.register(self.client, READABLE)
                else:
                    with contextlib.suppress(KeyError):
                        poller.unregister(self.client)
                if writing:
                    poller.register(self.upstream, WRITABLE)
                else:
                    with contextlib.suppress(KeyError):
                        poller.unregister(self.upstream)
                timeout = None if writing else max(0.0, last + self.stall - time.monotonic()) * 1000
                ready = dict(poller.poll(timeout))
                if self.stop_read in ready:
                    return
                if not ready and not writing:
                    raise TimeoutError("the request body stalled")
                gathering = False  # the client just sent more of the body: gather some before it goes on
                if reading and self.client in ready:
                    moved = self._splice(self.client, pipe_in, min(self.remaining, room - held))
                    if moved == 0:
                        cut = "the client closed the connection mid-body"
                    elif moved is None:
                        cut = "the client went away mid-body"
                    elif moved < 0:
                        full = held > 0
                    else:
                        self.remaining -= moved
                        held += moved
                        last = time.monotonic()
                        gathering = self.remaining > 0 and held < FLUSH_SIZE
                if held and self.passing and self.upstream in ready and not gathering:
                    try:
                        sent = self._splice(pipe_out, self.upstream, held)
                    except OSError:  # gunicorn answered early and closed: the rest is dropped
                        self.passing = False
                    else:
                        if sent is not None and sent > 0:
                            held -= sent
                            full = False
                            last = time.monotonic()
                if held and not self.passing:
                    held -= len(os.read(pipe_out, held))
                    full = False
            if cut is not None:
                raise ConnectionError(cut)
        finally:
            os.close(pipe_out)
            os.close(pipe_in)

    def _splice(self, source: int, target: int, count: int) -> int | None:
        """Bytes moved: -1 when the source had none after all; 0 at its end; None when the
        client's connection broke (an error on gunicorn's side is raised)."""
        try:
            return os.splice(source, target, count, flags=SPLICE_FLAGS)
        except BlockingIOError:
            return -1
        except OSError:
            if source == self.client:
                return None
            raise


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


async def pass_body(client: Socket, upstream: Socket, remaining: int, stall: float,
                    passing: bool) -> None:  # fmt: skip
    """Move the next ``remaining`` bytes of the client's body to gunicorn (or drop them when not
    ``passing``). The event loop must not read from ``client`` nor write to ``upstream`` meanwhile.

    Raises:
        ConnectionError: the client went away mid-body (what it sent before has been passed on).
        TimeoutError: the client sent nothing for ``stall`` seconds while the pipe was empty.
    """
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    move = _Move(client, upstream, remaining, stall, passing)
    thread = threading.Thread(target=move.run, args=(done,), name="chute-front-body", daemon=True)
    try:
        thread.start()
        try:
            await done
        finally:
            move.stop()  # when this task is cancelled: the thread only waits in poll, which this wakes
            thread.join()  # the sockets are the event loop's alone again
    finally:
        move.close()
