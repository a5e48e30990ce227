"""The buffering front ``chute web`` runs before gunicorn, so slow clients never hold a thread.

gunicorn's gthread workers hand a connection to a thread as soon as its first byte arrives,
and the thread then reads the request at the client's pace: sixteen clients sending a byte a
second hold sixteen threads, and ``/healthz`` stops answering. This front (asyncio, with
``h11`` parsing HTTP/1.1) reads each request completely first — the head within
``web_header_timeout_seconds``, the body with at most ``web_body_stall_seconds`` between two
reads, spooled to a temporary file past ``MEMORY_BUFFER`` — and only then passes it to
gunicorn over a private Unix socket, where it is read at memory speed. A client that stalls is
answered 408 and dropped; a thousand idle or trickling connections cost a few kilobytes each
and no thread. Responses are passed on as they come, unbuffered, so long-lived streams
(Server-Sent Events) keep working. The front speaks to gunicorn in raw bytes: it builds each
request's head from what h11 parsed, and of an answer reads only the head and the framing
(``_relay``), writing the body through untouched (h11 on that side was most of the front's CPU
for a small GET). A plain bodiless GET or HEAD that arrives whole is read by hand too
(``_quick_head``); every other request, and anything unusual in one, is left to h11.

Upload bodies (a chunk PUT, a tus PATCH or creation, a multipart ``POST /v1/jobs``) are the
exception once they have proved large: spooling them cost a second disk write and a second
pass over every byte. When such a body's first ``MEMORY_BUFFER`` bytes have arrived and more
are declared (``Content-Length``), the front passes it on as it arrives instead, with
backpressure both ways (it reads from the client only as fast as gunicorn takes the bytes,
so memory stays flat whatever the file's size); past what h11 read, the kernel moves the bytes
from the client's socket to gunicorn's (``web.front_splice``: Linux's splice; elsewhere such
bodies are spooled). Such a request holds a gunicorn thread at
the client's pace, so at most ``max_streams`` bodies stream at once (half the API's threads,
as ``chute web`` configures it); past that they are spooled as before, and the rest of the
threads only ever see complete requests. A trickling client never streams: it would have to
send a whole ``MEMORY_BUFFER`` first, and even then it can only take one of those slots. The
stall limit holds while streaming (408, and the app sees the body cut off).

This is what a buffering proxy such as nginx does in deploy/; the front makes ``chute web`` safe
on its own. The client's address reaches the app in ``X-Chute-Peer`` (set by the front, never
taken from the client), which :class:`PeerAddress` turns back into ``REMOTE_ADDR``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import math
import re
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import IO, Any, NamedTuple

import h11

from web import front_splice
from web.ratelimit import THROTTLE_HEADER, classify

log = logging.getLogger(__name__)

#: The header that carries the client's address to the app (lower case, as h11 gives headers).
PEER_HEADER = b"x-chute-peer"
#: Bytes read from a socket at once.
READ_SIZE = 64 * 1024
#: A request body is kept in memory up to this size, then spooled to a temporary file.
MEMORY_BUFFER = 1024 * 1024
#: Largest request head (request line and headers).
MAX_HEAD = 64 * 1024
#: How long a kept-alive connection may sit idle between two requests.
KEEPALIVE_SECONDS = 75.0
#: Response bytes buffered towards a client before the front stops reading from gunicorn.
WRITE_BUFFER = 1024 * 1024
#: The app's throttle verdicts (``web.ratelimit.THROTTLE_HEADER``), lower case as h11 gives them.
THROTTLE = THROTTLE_HEADER.lower().encode()
#: Most throttle verdicts remembered; past that the expired ones are dropped.
MAX_THROTTLED = 10_000
#: Bytes of an upload body read (in memory) before it is passed on as it arrives: a body that
#: ends sooner is an ordinary complete request, and a client must send this much to stream.
STREAM_AFTER = MEMORY_BUFFER - READ_SIZE
#: Largest read of a streamed body past h11 (``Front._pump``).
BODY_BLOCK = 1024 * 1024
#: Upload routes whose large bodies stream (``_streams``): method and path prefix, or exact path for POST.
STREAMED_PUT_PATCH = (b"/v1/uploads/", b"/v1/tus/")
STREAMED_POST = frozenset({b"/v1/jobs", b"/v1/tus"})
#: Longest a request waits for a cut-off body to its target to be stored (``Front._after_partials``).
PARTIAL_WAIT_SECONDS = 30.0
#: Headers that describe one hop's connection, never passed on (RFC 9110 §7.6.1), and our own.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
     b"expect", b"content-length", PEER_HEADER, THROTTLE}
)  # fmt: skip
#: Longest chunk size or trailer line read from gunicorn.
MAX_CHUNK_LINE = 4096
#: Statuses whose answer has no body whatever its headers say (RFC 9112 §6.3).
NO_BODY = frozenset({204, 304})


class PeerAddress:
    """WSGI middleware for the app behind the front: ``REMOTE_ADDR`` from ``X-Chute-Peer``.

    Only used when ``chute web`` started gunicorn behind the front (``behind_front``), whose
    Unix socket nobody else can reach.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        peer = environ.pop("HTTP_X_CHUTE_PEER", None)
        if peer:
            environ["REMOTE_ADDR"] = peer
        return self.app(environ, start_response)


@dataclass(frozen=True)
class FrontConfig:
    """Where gunicorn listens and the limits the front holds clients to.

    Attributes:
        max_streams: Upload bodies passed on as they arrive at once (each holds a gunicorn
            thread at the client's pace); 0 spools every body.
    """

    upstream_socket: str
    header_timeout: float
    body_stall: float
    max_body: int
    max_streams: int = 0


class _Refuse(Exception):
    """Answer the client with ``status`` and close the connection."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Partial(Exception):
    """The client went away mid-body of a request whose partial body is still worth passing on."""

    def __init__(self, body: IO[bytes]):
        super().__init__("partial body")
        self.body = body


class _ClientGone(Exception):
    """The client went away (or broke the protocol) while its body was being passed on."""


class _Head(NamedTuple):
    """A request's head as the front uses it: from h11, or from ``_quick_head`` (header names lower case)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes


#: A complete head of a bodiless GET or HEAD with nothing in it that needs h11's judgement: a plain
#: origin-form target, HTTP/1.1, header names that are tokens and values without control bytes.
_QUICK = re.compile(
    rb"(GET|HEAD) (/[!-~]*) HTTP/1\.1\r\n((?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t -~\x80-\xff]*\r\n)*)\r\n"
)
#: Headers that make a request one for h11 to read (a body, or an expectation).
_NOT_QUICK = frozenset({b"content-length", b"transfer-encoding", b"expect"})


def _quick_head(data: bytes) -> tuple[_Head, bytes] | None:
    """The head ``data`` starts with when it is a plain bodiless GET or HEAD (``_QUICK``), parsed by
    hand, and the bytes after it; None leaves the bytes to h11 (which refuses what it must).

    The most frequent request (a status poll, a tus HEAD) costs a regular expression and a split
    here, against most of the front's CPU for a small GET through h11.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0 or end > MAX_HEAD:
        return None
    match = _QUICK.match(data, 0, end + 4)
    if match is None or match.end() != end + 4:
        return None
    headers = []
    host = False
    for line in match.group(3).split(b"\r\n")[:-1]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name in _NOT_QUICK:
            return None
        host = host or name == b"host"
        headers.append((name, value.strip(b" \t")))
    if not host:  # h11 answers that 400
        return None
    return _Head(match.group(1), match.group(2), headers, b"1.1"), data[end + 4 :]


def _streams(request: _Head) -> bool:
    """An upload route whose body has a declared length: worth passing on as it arrives."""
    length = _header(request.headers, b"content-length")
    if not front_splice.AVAILABLE or length is None or not length.isdigit() or int(length) <= MEMORY_BUFFER:
        return False
    path = request.target.split(b"?", 1)[0]
    if request.method in (b"PUT", b"PATCH"):
        return path.startswith(STREAMED_PUT_PATCH)
    return request.method == b"POST" and path in STREAMED_POST


def _declared_length(request: _Head) -> int | None:
    """The body's ``Content-Length`` when it alone frames the body (h11 checked it is a number)."""
    if _header(request.headers, b"transfer-encoding") is not None:
        return None
    length = _header(request.headers, b"content-length")
    return int(length) if length is not None and length.isdigit() else None


def _body_pending(conn: h11.Connection, request: _Head, body: IO[bytes]) -> bool:
    """More of the request's body is still to be read (``Front._read_body`` stopped early)."""
    declared = _declared_length(request)
    if declared is not None and conn.their_state is h11.SEND_BODY:
        return _size(body) < declared
    return conn.their_state is h11.SEND_BODY


def _keeps_alive(request: _Head) -> bool:
    """The client means to send another request on this connection (HTTP/1.1, no close)."""
    connection = (_header(request.headers, b"connection") or "").lower()
    return request.http_version == b"1.1" and "close" not in connection


def _keeps_partial(request: _Head) -> bool:
    """A tus PATCH: the protocol keeps the bytes that arrived before a connection broke, so the
    client resumes from there instead of sending them again (tus 1.0.0, core protocol)."""
    return request.method == b"PATCH" and _header(request.headers, b"tus-resumable") is not None


class _AnswerStaysReadable(asyncio.StreamReaderProtocol):
    """An upstream connection whose received answer stays readable after a failed write.

    The app may answer before it has read the whole body (507 on a full staging disk, 413, 401)
    and gunicorn may then close; the next write of the body fails, and asyncio's default would
    make the reader raise that error even though the answer is in its buffer. Here the reader
    just ends after the answer, so the client gets it instead of a 502.
    """

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None)


class _Upstream:
    """One kept-alive connection to gunicorn, spoken to in raw bytes (``_upstream_head``, ``_relay``).

    Attributes:
        reusable: The last answer ended cleanly, framed, without ``Connection: close``.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.reusable = False

    def close(self) -> None:
        self.writer.close()


class _Reader(asyncio.StreamReader):
    """A client's stream reader that can hand over what it holds unread (``Front._pump``)."""

    def take(self) -> bytes:
        """The bytes buffered and not yet read, removed from the reader (without waiting for more)."""
        buffer: bytearray = self._buffer  # type: ignore[attr-defined]  # asyncio's own, with no public accessor
        held = bytes(buffer)
        buffer.clear()
        self._maybe_resume_transport()  # type: ignore[attr-defined]
        return held


class _Discard:
    """Where an answer nobody waits for goes (``_discard_answer``)."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


@dataclass
class _Relayed:
    """What ``_relay`` learned of an answer it passed on."""

    #: The app's throttle verdict on a 429, if it gave one.
    throttle: bytes | None
    #: The client may send another request on its connection (its answer was framed, and it did not ask to close).
    client_kept: bool


class _Chunks:
    """Finds the end of a chunked body whose bytes are passed on untouched.

    gunicorn is trusted to frame correctly: a chunk's data and its CRLF are skipped by count, and
    only the size lines and the trailer section are read.
    """

    def __init__(self) -> None:
        self.left = 0  # bytes of chunk data (and its CRLF) still to skip
        self.line = b""  # a size or trailer line cut by a read
        self.trailers = False  # past the last chunk

    def feed(self, data: bytes) -> int:
        """How many bytes of ``data`` belong to the body; less than ``len(data)`` only at its end, and
        -1 when the body goes on past ``data``.

        Raises:
            ConnectionError: gunicorn's framing is broken.
        """
        at, size = 0, len(data)
        while at < size:
            if self.left:
                step = min(self.left, size - at)
                at += step
                self.left -= step
                continue
            end = data.find(b"\n", at)
            if end < 0:
                self.line += data[at:]
                if len(self.line) > MAX_CHUNK_LINE:
                    raise ConnectionError("gunicorn sent a chunk size line too long")
                return -1
            line, self.line, at = (self.line + data[at:end]).strip(), b"", end + 1
            if self.trailers:
                if not line:
                    return at
                continue
            try:
                chunk = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise ConnectionError("gunicorn sent a malformed chunk size") from None
            if chunk == 0:
                self.trailers = True
            else:
                self.left = chunk + 2
        return -1


class Front:
    """Serves clients on TCP and passes complete requests to gunicorn on a Unix socket."""

    def __init__(self, config: FrontConfig):
        self.config = config
        self.connections: set[asyncio.Task[Any]] = set()
        #: (credential digest, class of route or "*") → (monotonic time it is refused until, policy).
        self.throttled: dict[tuple[str, str], tuple[float, str]] = {}
        #: Request targets whose cut-off body is still being passed on → set when it is stored.
        self.partials: dict[bytes, asyncio.Event] = {}
        #: Bodies being passed on as they arrive (at most ``config.max_streams``).
        self.streaming = 0

    def _throttle_key(self, request: _Head) -> tuple[str, str] | None:
        credential = _header(request.headers, b"authorization")
        if not credential:
            return None
        path = request.target.split(b"?", 1)[0].decode("latin-1")
        digest = hashlib.sha256(credential.encode("latin-1")).hexdigest()
        return digest, classify(request.method.decode("latin-1"), path)

    def _refused_until(self, request: _Head) -> tuple[float, str] | None:
        """When the app said this credential's requests of this class are refused until a time
        still ahead, that time and the policy: the front answers 429 itself."""
        if not self.throttled:
            return None
        key = self._throttle_key(request)
        if key is None:
            return None
        now = time.monotonic()
        for scope in (key, (key[0], "*")):
            verdict = self.throttled.get(scope)
            if verdict is not None and verdict[0] > now:
                return verdict
        return None

    def _remember(self, request: _Head, value: bytes) -> None:
        """Record the app's verdict ``<class or *> <seconds> <policy>`` for the request's credential."""
        key = self._throttle_key(request)
        parts = value.decode("latin-1").split()
        if key is None or len(parts) != 3 or not parts[1].isdigit():
            return
        if len(self.throttled) >= MAX_THROTTLED:
            now = time.monotonic()
            self.throttled = {k: v for k, v in self.throttled.items() if v[0] > now}
        self.throttled[(key[0], parts[0])] = (time.monotonic() + int(parts[1]), parts[2])

    async def serve(self, host: str, port: int) -> asyncio.Server:
        """``asyncio.start_server``, with readers that can hand over what they hold (``_Reader``)."""
        loop = asyncio.get_running_loop()

        def connected() -> asyncio.StreamReaderProtocol:
            return asyncio.StreamReaderProtocol(_Reader(limit=READ_SIZE, loop=loop), self.handle, loop=loop)

        return await loop.create_server(connected, host, port, backlog=2048)

    async def drain(self, grace: float) -> None:
        """Let open connections finish for up to ``grace`` seconds, then cut the rest."""
        pending = {task for task in self.connections if not task.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else ""
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        upstream: _Upstream | None = None
        answered = [False]
        first = True
        try:
            while True:
                answered = [False]  # the answer to this request has started (the front can no longer answer)
                request = await self._read_head(conn, reader, first)
                if request is None:
                    return
                first = False
                verdict = self._refused_until(request)
                if verdict is not None:
                    if not await self._answer_throttled(conn, writer, request, verdict):
                        return
                    conn = _next_connection(conn)
                    continue
                streams = _streams(request) and self.streaming < self.config.max_streams
                if conn.their_state is h11.IDLE:  # read by ``_quick_head``: no body
                    body: IO[bytes] = io.BytesIO()
                else:
                    try:
                        body = await self._read_body(conn, reader, writer, request, STREAM_AFTER if streams else None)
                    except _Partial as partial:
                        await self._forward_partial(request, partial.body, peer)
                        return
                await self._after_partials(request)
                pending = _body_pending(conn, request, body)
                if streams and pending and self.streaming < self.config.max_streams:
                    if upstream is not None:
                        upstream.close()
                        upstream = None
                    kept = await self._stream(request, body, peer, conn, reader, writer, answered)
                else:
                    if pending:  # no stream slot left after all: spool the rest
                        try:
                            body = await self._read_body(conn, reader, writer, request, None, body)
                        except _Partial as partial:
                            await self._forward_partial(request, partial.body, peer)
                            return
                    try:
                        upstream, kept = await self._forward(upstream, request, body, peer, writer, answered)
                    finally:
                        body.close()
                if not kept:
                    return
                # The answer went past ``conn`` (``_relay``): the next request starts a fresh one,
                # from what the client already sent of it.
                conn = _next_connection(conn)
        except _Refuse as refusal:
            if not answered[0]:
                await self._answer(writer, refusal.status, refusal.code, refusal.message)
        except h11.RemoteProtocolError as e:
            if not answered[0]:
                await self._answer(writer, e.error_status_hint, "bad_request", str(e))
        except (ConnectionError, asyncio.IncompleteReadError, h11.LocalProtocolError, OSError) as e:
            log.debug("front: connection from %s ended: %s", peer, e)
        finally:
            if upstream is not None:
                upstream.close()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _receive(self, conn: h11.Connection, reader: asyncio.StreamReader, timeout: float) -> Any:
        """The next event from the client, reading at most ``timeout`` seconds for it."""
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            # asyncio.timeout, not wait_for: no task created per read.
            async with asyncio.timeout(timeout):
                data = await reader.read(READ_SIZE)
            conn.receive_data(data)

    async def _read_head(self, conn: h11.Connection, reader: asyncio.StreamReader, first: bool) -> _Head | None:
        """The next request's head; None when the client closed (or stayed idle) between requests.

        A plain GET or HEAD that arrives whole in one read is parsed by hand (``_quick_head``)
        and ``conn`` only keeps what follows it; anything else goes through h11 in ``conn``,
        whose state then says whether a body follows.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.header_timeout
        if not conn.trailing_data[0]:
            try:  # a kept-alive connection may idle a while before its next request starts
                async with asyncio.timeout_at(deadline if first else loop.time() + KEEPALIVE_SECONDS):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                return None  # nothing was sent: close quietly
            if not data:
                return None
            quick = _quick_head(data)
            if quick is not None:
                if quick[1]:
                    conn.receive_data(quick[1])
                return quick[0]
            if not first:
                deadline = loop.time() + self.config.header_timeout
            conn.receive_data(data)
        try:
            async with asyncio.timeout_at(deadline):
                event = await self._receive(conn, reader, self.config.header_timeout)
        except TimeoutError:
            if conn.their_state is h11.IDLE and not conn.trailing_data[0]:
                return None  # nothing was sent: close quietly
            raise _Refuse(408, "request_timeout", "the request head took too long") from None
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise _Refuse(400, "bad_request", "expected a request")
        return _Head(event.method, event.target, list(event.headers), event.http_version)

    async def _read_body(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: _Head,
        upto: int | None = None,
        started: IO[bytes] | None = None,
    ) -> IO[bytes]:
        """The whole body, spooled; a body that sends nothing for ``body_stall`` seconds is refused.

        Parameters:
            upto: Stop once at least this many bytes are read (the body may go on: the caller
                sees ``conn.their_state`` still ``SEND_BODY``).
            started: What an earlier call read of this body; reading goes on after it.
        """
        if started is None:
            length = _header(request.headers, b"content-length")
            if length is not None and length.isdigit() and int(length) > self.config.max_body:
                raise _Refuse(413, "request_entity_too_large", f"the body is over {self.config.max_body} bytes")
            if conn.they_are_waiting_for_100_continue:
                await _send(writer, conn, h11.InformationalResponse(status_code=100, headers=[]))
        body: IO[bytes] = started or tempfile.SpooledTemporaryFile(max_size=MEMORY_BUFFER)  # noqa: SIM115 (the caller closes it)
        size = body.seek(0, 2)
        declared = _declared_length(request)
        try:
            while upto is None or size < upto:
                if declared is not None and conn.their_state is h11.SEND_BODY and not conn.trailing_data[0]:
                    # h11 holds nothing more of a body of known length: the rest is read past it.
                    size = await self._read_raw(reader, request, body, size, min(declared, upto or declared))
                    break
                try:
                    event = await self._receive(conn, reader, self.config.body_stall)
                except (h11.RemoteProtocolError, ConnectionError):  # the client went away mid-body
                    if size and _keeps_partial(request):
                        raise _Partial(body) from None
                    raise
                except TimeoutError:
                    raise _Refuse(408, "request_timeout", "the request body stalled") from None
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > self.config.max_body:
                        raise _Refuse(413, "request_entity_too_large", f"the body is over {self.config.max_body} bytes")
                    body.write(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    if size and _keeps_partial(request):
                        raise _Partial(body)
                    raise ConnectionError("the client closed the connection mid-body")
            body.seek(0)
            return body
        except _Partial:
            raise
        except BaseException:
            body.close()
            raise

    async def _read_raw(self, reader: asyncio.StreamReader, request: _Head, body: IO[bytes], size: int,
                        upto: int) -> int:  # fmt: skip
        """Read a body on from ``size`` bytes to exactly ``upto`` (at most its declared length)
        straight from the stream reader into ``body`` (h11's pass cost two more copies of every
        block); no further, so a next request stays unread and a spool stays in memory when
        ``upto`` is ``STREAM_AFTER``. Returns the size reached."""
        while size < upto:
            try:
                async with asyncio.timeout(self.config.body_stall):
                    data = await reader.read(min(BODY_BLOCK, upto - size))
            except TimeoutError:
                raise _Refuse(408, "request_timeout", "the request body stalled") from None
            except ConnectionError:
                data = b""
            if not data:
                if size and _keeps_partial(request):
                    raise _Partial(body)
                raise ConnectionError("the client closed the connection mid-body")
            size += len(data)
            body.write(data)
        return size

    async def _stream(
        self,
        request: _Head,
        head: IO[bytes],
        peer: str,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        answered: list[bool],
    ) -> bool:
        """Pass on a body whose first bytes are in ``head`` as the rest arrives, and the answer
        back; returns whether the client's connection can serve another request (its next one
        is then read with a fresh ``h11.Connection``: ``conn`` may not have seen this body's end,
        ``_pump``). The upstream connection is not kept: gunicorn may not have read the body.

        The body goes up while the answer is read, as in ``_forward``. When the app answers
        before it has read everything (a 404, a 413), the rest of the body is still read (and
        dropped) so the client hears the answer instead of a reset. A client that goes away
        mid-body cuts the body gunicorn reads short: the app then sees a disconnected client,
        which a tus PATCH answers by keeping what arrived (``_after_partials`` makes the next
        request to that upload wait for it, as for a spooled cut body).
        """
        self.streaming += 1
        upstream: _Upstream | None = None
        try:
            upstream = await self._connect()
            if upstream is None:
                raise _Refuse(503, "service_unavailable", "the API is starting or restarting; try again")
            length = int(_header(request.headers, b"content-length") or 0)
            upstream.writer.write(_upstream_head(request, length, peer))
            pump = asyncio.create_task(self._pump(head, length - _size(head), conn, reader, writer, upstream))
            relay = asyncio.create_task(_relay(upstream, writer, request, answered))
            try:
                await asyncio.wait({pump, relay}, return_when=asyncio.FIRST_COMPLETED)
                if pump.done() and pump.exception() is not None:
                    relay.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                        await relay
                    await self._after_cut(request, upstream, pump.exception(), answered[0])
                    upstream = None
                    return False
                try:
                    relayed = await relay
                except (ConnectionError, OSError):
                    if answered[0]:
                        raise
                    raise _Refuse(502, "bad_gateway", "the API closed the connection without answering") from None
                if relayed.throttle is not None:
                    self._remember(request, relayed.throttle)
                await pump  # the rest of a body the app answered early (its stall limit holds)
            finally:
                for task in (pump, relay):
                    task.cancel()
                await asyncio.gather(pump, relay, return_exceptions=True)
            return relayed.client_kept
        except _ClientGone as e:
            raise ConnectionError(str(e)) from None
        finally:
            self.streaming -= 1
            head.close()
            if upstream is not None:
                upstream.close()

    async def _pump(
        self, head: IO[bytes], remaining: int, conn: h11.Connection, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, upstream: _Upstream,
    ) -> None:  # fmt: skip
        """Send ``head``, then the client's body as it arrives, to gunicorn; once gunicorn stops
        taking it (it answered early and closed), read the rest of the body and drop it.

        What h11 already holds of the body goes through it; the rest (``remaining`` bytes less
        that) goes straight from the client's socket to gunicorn's (``_splice``), bypassing
        h11 and the stream reader (each pass through them copied every block again), and exactly
        that many bytes are taken, so a next request on the connection stays for the reader.

        Raises:
            _ClientGone: the client went away or broke the protocol mid-body.
            TimeoutError: the client sent nothing for ``body_stall`` seconds.
        """
        passing = True

        async def up(data: bytes) -> None:
            nonlocal passing
            if passing:
                try:
                    upstream.writer.write(data)
                    await upstream.writer.drain()
                except (ConnectionError, OSError):
                    passing = False

        await up(head.read())
        try:
            while (event := conn.next_event()) is not h11.NEED_DATA:
                if isinstance(event, h11.Data):
                    remaining -= len(event.data)
                    await up(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return
                else:
                    raise _ClientGone("the client closed the connection mid-body")
        except h11.RemoteProtocolError as e:
            raise _ClientGone(f"the client broke the protocol mid-body: {e}") from None
        if remaining > 0:
            assert isinstance(reader, _Reader)
            await self._splice(reader, writer, upstream, remaining, passing, up)

    async def _splice(self, reader: _Reader, writer: asyncio.StreamWriter, upstream: _Upstream, remaining: int,
                      passing: bool, up: Callable[[bytes], Awaitable[None]]) -> None:  # fmt: skip
        """The rest of a streamed body: what the stream reader holds, then ``remaining`` bytes
        less that moved by the kernel (``front_splice``) while neither transport touches them."""
        client = writer.transport
        assert isinstance(client, asyncio.Transport)
        client.pause_reading()
        held = reader.take()
        client.pause_reading()  # ``take`` may have resumed it
        body, rest = held[:remaining], held[remaining:]  # the rest: the client's next request
        try:
            await up(body)
            remaining -= len(body)
            transport = upstream.writer.transport
            if remaining and not transport.is_closing():
                # Nothing of the body may wait in the transport: the kernel writes after it.
                transport.set_write_buffer_limits(high=0)
                with contextlib.suppress(ConnectionError, OSError):
                    await upstream.writer.drain()
                with contextlib.suppress(OSError):  # a deeper socket buffer: more of the body per move
                    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BODY_BLOCK)
            if remaining:
                passing = passing and not transport.is_closing() and transport.get_write_buffer_size() == 0
                try:
                    await front_splice.pass_body(client.get_extra_info("socket"), transport.get_extra_info("socket"),
                                                 remaining, self.config.body_stall, passing)  # fmt: skip
                except ConnectionError as e:
                    raise _ClientGone(str(e)) from None
        finally:
            if rest:
                reader.feed_data(rest)
            if not client.is_closing():
                client.resume_reading()

    async def _after_cut(self, request: _Head, upstream: _Upstream, error: BaseException | None,
                         answered: bool) -> None:  # fmt: skip
        """The client's body stopped short while streaming: end gunicorn's side of it.

        A tus PATCH keeps what arrived: gunicorn's side of the body is ended (the app sees the
        client gone and stores what it read) and its answer, which has nobody to go to, is
        awaited so the next request to that upload finds the bytes stored. Anything else is
        simply dropped. A stalled client is answered 408 as when spooling.
        """
        if isinstance(error, _ClientGone) and _keeps_partial(request):
            done = self.partials[request.target] = asyncio.Event()
            try:
                with contextlib.suppress(ConnectionError, OSError):
                    upstream.writer.write_eof()
                if not answered:  # else the app answered already, having stored what it read
                    await _discard_answer(upstream)
            finally:
                done.set()
                if self.partials.get(request.target) is done:
                    del self.partials[request.target]
                upstream.close()
            raise _ClientGone("the client went away mid-body")
        upstream.close()
        if isinstance(error, TimeoutError) and not answered:
            raise _Refuse(408, "request_timeout", "the request body stalled")
        if isinstance(error, BaseException):
            raise error

    async def _forward(
        self,
        upstream: _Upstream | None,
        request: _Head,
        body: IO[bytes],
        peer: str,
        writer: asyncio.StreamWriter,
        answered: list[bool],
    ) -> tuple[_Upstream | None, bool]:
        """Send the request to gunicorn and stream its response to the client; returns the
        upstream connection if it can be used again, and whether the client's can."""
        size = _size(body)
        outgoing = _upstream_head(request, size, peer)
        for attempt in range(2):
            # A kept-alive connection gunicorn closed meanwhile (its keep-alive is short) fails
            # before any answer: the request is sent again once, on a fresh connection.
            reused = upstream is not None and upstream.reusable and not upstream.reader.at_eof()
            if not reused:
                if upstream is not None:
                    upstream.close()
                upstream = await self._connect()
                if upstream is None:
                    raise _Refuse(503, "service_unavailable", "the API is starting or restarting; try again")
            assert upstream is not None
            try:
                upstream.writer.write(outgoing)
                # The body goes up while the answer is read: an app that answers early (and may
                # close) is heard, rather than a failed write being taken for no answer. A request
                # without a body (most of them) has no task to run it: its head is on its way.
                sending = asyncio.create_task(_send_body(upstream, body)) if size else None
                try:
                    relayed = await _relay(upstream, writer, request, answered)
                finally:
                    sent = sending is None or (sending.done() and not sending.cancelled() and not sending.exception())
                    if sending is not None and not sending.done():
                        sending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                        if sending is not None:
                            await sending
                if relayed.throttle is not None:
                    self._remember(request, relayed.throttle)
            except (ConnectionError, OSError):
                upstream.close()
                upstream = None
                if answered[0]:
                    raise
                if reused and attempt == 0:
                    continue
                raise _Refuse(502, "bad_gateway", "the API closed the connection without answering") from None
            except BaseException:
                upstream.close()
                raise
            break
        assert upstream is not None
        if upstream.reusable and sent:
            return upstream, relayed.client_kept
        upstream.close()
        return None, relayed.client_kept

    async def _after_partials(self, request: _Head) -> None:
        """Hold a request to a target whose cut-off body is still being passed on until it is
        stored: a tus client asks HEAD at once after a cut, and must hear the offset that
        includes the bytes it sent, or it sends them all again."""
        pending = self.partials.get(request.target)
        if pending is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pending.wait(), PARTIAL_WAIT_SECONDS)

    async def _forward_partial(self, request: _Head, body: IO[bytes], peer: str) -> None:
        """Pass on what arrived of a body whose client is gone; its answer goes nowhere."""
        done = self.partials[request.target] = asyncio.Event()
        try:
            await self._pass_on_partial(request, body, peer)
        finally:
            done.set()
            if self.partials.get(request.target) is done:
                del self.partials[request.target]

    async def _pass_on_partial(self, request: _Head, body: IO[bytes], peer: str) -> None:
        upstream = await self._connect()
        try:
            if upstream is None:
                return
            upstream.writer.write(_upstream_head(request, _size(body), peer))
            await _send_body(upstream, body)
            await _discard_answer(upstream)
        except (ConnectionError, OSError) as e:
            log.debug("front: passing on a partial body failed: %s", e)
        finally:
            body.close()
            if upstream is not None:
                upstream.close()

    async def _answer_throttled(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, request: _Head, verdict: tuple[float, str]
    ) -> bool:
        """429 as the app would answer it; True when the connection can serve another request
        (the request had no body to skip)."""
        retry_after = max(1, math.ceil(verdict[0] - time.monotonic()))
        body = json.dumps(
            {
                "error": {
                    "code": "rate_limited",
                    "message": f"too many requests; try again in {retry_after} s",
                    "details": {"policy": verdict[1], "retry_after": retry_after},
                }
            }
        ).encode()
        has_body = _header(request.headers, b"transfer-encoding") is not None or (
            _header(request.headers, b"content-length") or "0") != "0"  # fmt: skip
        headers = [b"content-type: application/json", b"content-length: " + str(len(body)).encode(),
                   b"retry-after: " + str(retry_after).encode(),
                   f'ratelimit: "{verdict[1]}";r=0;t={retry_after}'.encode()]  # fmt: skip
        kept = not has_body and _keeps_alive(request)
        if conn.their_state is h11.SEND_BODY and not has_body:
            conn.next_event()  # the request's EndOfMessage, so that what follows is the next request
        writer.write(_head(429, headers, kept) + body)
        await writer.drain()
        return kept

    async def _connect(self) -> _Upstream | None:
        try:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
            transport, protocol = await loop.create_unix_connection(
                lambda: _AnswerStaysReadable(reader, loop=loop), self.config.upstream_socket
            )
        except OSError:
            return None
        return _Upstream(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def _answer(self, writer: asyncio.StreamWriter, status: int, code: str, text: str) -> None:
        """A JSON error in chute's shape, then close (the caller knows no answer has started)."""
        body = json.dumps({"error": {"code": code, "message": text, "details": {}}}).encode()
        headers = [b"content-type: application/json", b"content-length: " + str(len(body)).encode()]
        with contextlib.suppress(Exception):
            writer.write(_head(status, headers, False) + body)
            await writer.drain()


def _head(status: int, headers: list[bytes], keep_alive: bool) -> bytes:
    """An answer's head from the front itself (header lines without their CRLF)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}".encode(), *headers]
    if not keep_alive:
        lines.append(b"connection: close")
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def _size(body: IO[bytes]) -> int:
    """The length of a spooled body (left at its start)."""
    size = body.seek(0, 2)
    body.seek(0)
    return size


async def _discard_answer(upstream: _Upstream) -> None:
    """Read gunicorn's answer to its end and drop it (its client is gone)."""
    with contextlib.suppress(ConnectionError, OSError):
        await _relay(upstream, _Discard(), None, [False])


def _upstream_head(request: _Head, size: int, peer: str) -> bytes:
    """The request's head as gunicorn gets it: its own hop headers, the body's real length, the peer.

    Built as bytes from what h11 parsed and checked (header names come lower case), with the
    client's HTTP version so that gunicorn frames its answer as that client can read it.
    """
    version = b" HTTP/1.0" if request.http_version == b"1.0" else b" HTTP/1.1"
    lines = [request.method + b" " + request.target + version]
    lines += [name + b": " + value for name, value in request.headers if name not in HOP_BY_HOP]
    if (
        size
        or _header(request.headers, b"content-length") is not None
        or _header(request.headers, b"transfer-encoding")
    ):
        lines.append(b"content-length: " + str(size).encode())
    lines.append(PEER_HEADER + b": " + peer.encode())
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def _next_connection(conn: h11.Connection) -> h11.Connection:
    """A fresh ``h11.Connection`` for the client's next request, holding what it sent of it already.

    One that h11 never parsed a request in (``_quick_head`` read it) is already that: it is kept.
    """
    if conn.their_state is h11.IDLE and conn.our_state is h11.IDLE:
        return conn
    data, closed = conn.trailing_data
    fresh = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    if data:
        fresh.receive_data(data)
    if closed:
        fresh.receive_data(b"")
    return fresh


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:  # names are lower case (h11's, and _quick_head's)
        if key == name:
            return value.decode("latin-1").strip()
    return None


async def _send_body(upstream: _Upstream, body: IO[bytes]) -> None:
    """Send a buffered request body to gunicorn (its ``Content-Length`` frames it)."""
    body.seek(0)
    while chunk := body.read(READ_SIZE * 4):
        upstream.writer.write(chunk)
        await upstream.writer.drain()


async def _relay(upstream: _Upstream, writer: Any, request: _Head | None, answered: list[bool]) -> _Relayed:
    """Pass gunicorn's answer on to ``writer`` as it comes; ``answered[0]`` turns True once the head is written.

    Only the head is parsed (the status, and the headers the front strips or must know); the
    body goes through untouched, read as far as its framing says (``Content-Length``, chunked,
    or gunicorn closing), so a stream (Server-Sent Events) reaches the client piece by piece.
    ``request`` is None when nobody waits for the answer (it is read to its end all the same).

    Raises:
        ConnectionError: gunicorn closed or broke the protocol (before or during the answer).
    """
    reader = upstream.reader
    upstream.reusable = False
    buf = b""
    while True:  # the head, past any interim (1xx) answer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ConnectionError("gunicorn's answer head is too large")
            data = await reader.read(READ_SIZE)
            if not data:
                raise ConnectionError("gunicorn closed the connection before answering")
            buf = buf + data if buf else data
            continue
        lines = buf[:end].split(b"\r\n")
        buf = buf[end + 4 :]
        status_line = lines[0]
        if not status_line.startswith(b"HTTP/1.") or not status_line[9:12].isdigit():
            raise ConnectionError("gunicorn sent a malformed status line")
        status = int(status_line[9:12])
        if status >= 200:
            break
    kept = [b"HTTP/1.1" + status_line[8:]]
    length: int | None = None
    encoded = chunked = closes = False
    throttle: bytes | None = None
    for line in lines[1:]:
        colon = line.find(b":")
        name = line[:colon].strip().lower()
        if name not in HOP_BY_HOP:
            kept.append(line)
            continue
        value = line[colon + 1 :].strip()
        if name == b"content-length":
            if not value.isdigit():
                raise ConnectionError("gunicorn sent a malformed Content-Length")
            length = int(value)
        elif name == b"transfer-encoding":
            encoded, chunked = True, value.lower().endswith(b"chunked")
        elif name == b"connection":
            closes = b"close" in value.lower()
        elif name == THROTTLE and status == 429:
            throttle = value
    client_kept = request is not None and _keeps_alive(request)
    bodiless = (request is not None and request.method == b"HEAD") or status in NO_BODY
    if bodiless:
        if length is not None:  # a HEAD answer tells the length a GET would have
            kept.append(b"content-length: " + str(length).encode())
    elif chunked:
        kept.append(b"transfer-encoding: chunked")
    elif length is not None and not encoded:
        kept.append(b"content-length: " + str(length).encode())
    else:  # the body ends when gunicorn closes: so must the client's connection
        client_kept = False
    if not client_kept:
        kept.append(b"connection: close")
    kept.append(b"\r\n")
    head = b"\r\n".join(kept)
    if bodiless:
        writer.write(head)
        answered[0] = True
        await writer.drain()
        upstream.reusable = not closes and not buf
    elif chunked:
        chunks = _Chunks()
        while True:
            used = chunks.feed(buf) if buf else -1
            if used >= 0:
                writer.write(head + buf[:used] if head else buf[:used])
                answered[0] = True
                break
            if head or buf:
                writer.write(head + buf if head else buf)
                answered[0], head = True, b""
            await writer.drain()
            buf = await reader.read(READ_SIZE)
            if not buf:
                raise ConnectionError("gunicorn closed the connection mid-response")
        await writer.drain()
        upstream.reusable = not closes and used == len(buf)
    elif length is not None and not encoded:
        piece = buf[:length]
        writer.write(head + piece)
        answered[0] = True
        left = length - len(piece)
        while left:
            await writer.drain()
            data = await reader.read(min(left, BODY_BLOCK))
            if not data:
                raise ConnectionError("gunicorn closed the connection mid-response")
            left -= len(data)
            writer.write(data)
        await writer.drain()
        upstream.reusable = not closes and len(buf) <= length
    else:
        writer.write(head + buf)
        answered[0] = True
        while data := await reader.read(READ_SIZE):
            await writer.drain()
            writer.write(data)
        await writer.drain()
    return _Relayed(throttle, client_kept)


async def _send(writer: asyncio.StreamWriter, conn: h11.Connection, event: Any) -> None:
    data = conn.send(event)
    if data:
        writer.write(data)
        await writer.drain()


#: Seconds requests in flight may take to finish once the front is told to stop.
STOP_GRACE_SECONDS = 10.0


async def run(config: FrontConfig, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then stop accepting and let requests in flight finish."""
    front = Front(config)
    server = await front.serve(host, port)
    log.info("front listening on %s:%s, passing requests to %s", host, port, config.upstream_socket)
    await stop.wait()
    server.close()
    await front.drain(STOP_GRACE_SECONDS)
    await server.wait_closed()
