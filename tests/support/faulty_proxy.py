"""A loopback TCP proxy that breaks one request on purpose: it cuts the connection, or flips a
byte, once a given number of bytes has gone upstream — deterministically, not by timing.

Everything after that one fault passes through untouched, so a client's retry can succeed.
"""

from __future__ import annotations

from tests.support.services import TcpProxy


class FaultyProxy(TcpProxy):
    """Forwards 127.0.0.1:``port`` to ``target_port``, with one fault.

    Parameters:
        cut_after: close the connection once this many bytes went upstream in all.
        corrupt_at: flip the byte at this position of everything sent upstream.
    """

    def __init__(self, target_port: int, *, cut_after: int | None = None, corrupt_at: int | None = None):
        self.cut_after, self.corrupt_at = cut_after, corrupt_at
        #: Bytes sent upstream over every connection, and how many faults were made.
        self.upstream_bytes = 0
        self.faults = 0
        super().__init__(target_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forward(self, data: bytes, upstream: bool) -> tuple[bytes, bool]:
        if not upstream:
            return data, True
        with self.lock:
            start = self.upstream_bytes
            self.upstream_bytes += len(data)
            if self.faults:
                return data, True
            if self.cut_after is not None and start + len(data) >= self.cut_after:
                self.faults += 1
                return data[: self.cut_after - start], False
            if self.corrupt_at is not None and 0 <= self.corrupt_at - start < len(data):
                self.faults += 1
                at = self.corrupt_at - start
                return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :], True
        return data, True
