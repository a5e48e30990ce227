"""A loopback TCP proxy that breaks one request on purpose: it cuts the connection, or flips a
byte, once a given number of bytes has gone upstream — deterministically, not by timing.

Everything after that one fault passes through untouched, so a client's retry can succeed.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.services import free_port


class FaultyProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``.

    Parameters:
        cut_after: close the first connection that sends this many bytes upstream.
        corrupt_at: flip the byte at this position of the upstream stream (once).
    """

    def __init__(self, target_port: int, *, cut_after: int | None = None, corrupt_at: int | None = None):
        self.target = ("127.0.0.1", target_port)
        self.cut_after, self.corrupt_at = cut_after, corrupt_at
        self.port = free_port()
        #: Bytes sent upstream over every connection, and how many faults were made.
        self.upstream_bytes = 0
        self.faults = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=30)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, source: socket.socket, sink: socket.socket) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                with self.lock:
                    start = self.upstream_bytes
                    self.upstream_bytes += len(data)
                    fault = None
                    if self.faults == 0 and self.cut_after is not None and sent + len(data) >= self.cut_after:
                        fault, data = "cut", data[: self.cut_after - sent]
                    elif self.faults == 0 and self.corrupt_at is not None and 0 <= self.corrupt_at - start < len(data):
                        fault = "corrupt"
                        at = self.corrupt_at - start
                        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                    if fault:
                        self.faults += 1
                sink.sendall(data)
                sent += len(data)
                if fault == "cut":
                    break
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _down(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closing.set()
        self.thread.join(2)
        self.listener.close()
