"""A real webhook receiver on loopback, for the webhook unit tests and the end-to-end tests.

It is a threaded HTTP server on 127.0.0.1 (a free port) that records every request and answers as
scripted, so tests exercise real sockets, real timeouts and real signature verification the way a
consumer would, instead of mocking urllib3::

    with WebhookReceiver(secret=secret) as receiver:
        receiver.script(Reply.error(500), Reply.ok())    # the next two answers
        ...deliver to receiver.url()...
        first, second = receiver.wait_for(2)
        assert second.verified

Answers are taken from the script in order, then from ``default`` (200 unless set). Shutting down
interrupts hanging answers, so ``close()`` takes milliseconds.

As a fixture: ``pytest_plugins = ["tests.support.webhook_receiver"]`` in the root conftest gives
``webhook_receiver``; or wrap the class in a local fixture.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

#: The longest a scripted hang lasts, so a forgotten receiver cannot hold a test run.
MAX_HANG_SECONDS = 30.0


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    body: bytes = b'{"received": true}'
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (bounded by MAX_HANG_SECONDS, cut short by close()).
    delay: float = 0.0
    #: Close the connection without answering at all.
    drop: bool = False

    @classmethod
    def ok(cls, status: int = 200, body: bytes = b'{"received": true}') -> Reply:
        return cls(status=status, body=body)

    @classmethod
    def error(cls, status: int = 500, body: bytes = b"internal error") -> Reply:
        return cls(status=status, body=body)

    @classmethod
    def gone(cls) -> Reply:
        return cls(status=410, body=b"gone")

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        return cls(status=status, body=b"", headers={"Location": location})

    @classmethod
    def too_many(cls, retry_after: str | int = 5, status: int = 429) -> Reply:
        return cls(status=status, body=b"slow down", headers={"Retry-After": str(retry_after)})

    @classmethod
    def hang(cls, seconds: float = 5.0, then: int = 200) -> Reply:
        """Answer ``then`` only after ``seconds``: longer than the client's timeout, it is a timeout."""
        return cls(status=then, delay=seconds)

    @classmethod
    def close(cls) -> Reply:
        """Read the request, then close the connection without a status line."""
        return cls(drop=True)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it."""

    method: str
    path: str
    #: Header names lower-cased (HTTP names are case-insensitive); repeated headers joined by ", ".
    headers: dict[str, str]
    body: bytes
    #: ``time.monotonic()`` when the body had been read.
    received_at: float
    #: Whether the Standard Webhooks signature verified; None when the receiver has no secret.
    verified: bool | None
    verify_error: str | None
    reply: Reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads are joined by server_close(); hangs wait on the stop event, so that is fast.
    block_on_close = True
    receiver: WebhookReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) makes the late answer fail with a broken pipe: expected.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    #: Socket timeout: a client that never sends its body cannot hold a thread at shutdown.
    timeout = 5.0
    server_version = "webhook-receiver/1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        receiver = self.server.receiver
        reply = receiver._record(self.command, self.path, headers, body)
        if reply.drop:
            self.close_connection = True
            return
        if reply.delay > 0 and receiver._stopping.wait(min(reply.delay, MAX_HANG_SECONDS)):
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers as scripted.

    Parameters:
        secret: a ``whsec_`` secret (or several, as a consumer in the middle of a rotation) to
            verify every request with; ``ReceivedRequest.verified`` says whether it did.
        default: the answer when the script is empty.
    """

    def __init__(self, *, secret: str | Sequence[str] | None = None, default: Reply | None = None) -> None:
        self._secrets: tuple[str, ...] = (secret,) if isinstance(secret, str) else tuple(secret or ())
        self.default = default or Reply()
        self._script: deque[Reply] = deque()
        self._requests: list[ReceivedRequest] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        """Listen on a free loopback port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("the receiver is already running")
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"webhook-receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, cut hanging answers short, and close every socket."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- scripting and inspection -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        """The URL of ``path`` on this receiver."""
        return self.base_url + path

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next requests, in order (then ``default`` again)."""
        with self._changed:
            self._script.extend(replies)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._changed:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Wait until ``count`` requests have arrived and return them all.

        Raises:
            AssertionError: fewer arrived within ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout=timeout):
                raise AssertionError(
                    f"expected {count} webhook request(s) within {timeout}s, got {len(self._requests)}"
                )
            return list(self._requests)

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Store one request (verifying it if there is a secret) and pick its answer."""
        verified, error = self._verify(headers, body)
        with self._changed:
            reply = self._script.popleft() if self._script else self.default
            self._requests.append(
                ReceivedRequest(
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    received_at=time.monotonic(),
                    verified=verified,
                    verify_error=error,
                    reply=reply,
                )
            )
            self._changed.notify_all()
        return reply

    def _verify(self, headers: dict[str, str], body: bytes) -> tuple[bool | None, str | None]:
        if not self._secrets:
            return None, None
        errors = []
        for secret in self._secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                return True, None
            except (WebhookVerificationError, UnicodeDecodeError, ValueError) as e:
                errors.append(str(e))
        return False, "; ".join(errors)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running :class:`WebhookReceiver` without a secret (set ``default``/``script`` per test)."""
    with WebhookReceiver() as receiver:
        yield receiver
