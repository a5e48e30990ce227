"""Signing and delivering webhooks (Standard Webhooks, https://www.standardwebhooks.com/).

This module is the HTTP edge of the notify stage: :func:`headers` signs a body, :func:`deliver` makes
one POST attempt and describes what happened as an :class:`Outcome`. It never raises for network or
HTTP problems and never sleeps or retries; the notify actor owns the schedule and records every
attempt.

What is retried (``Outcome.retryable``): every failure except ``410 Gone``, following Standard
Webhooks practice (Svix, the reference sender, does the same). A 400 or 404 usually means the
receiver is being deployed or misconfigured, and the consumer can fix it before the schedule runs
out; guessing which 4xx are "permanent" would drop events that a retry would have delivered.

- 2xx: delivered (``ok``), whatever the body says.
- 410: the receiver asks us to stop (``gone``); not retried.
- 3xx: a failure, and the redirect is **not followed**: following it would bypass the URL check
  and, for a POST, most clients turn it into a GET. Retried, because the consumer may fix the URL.
- 429 and 503 may carry ``Retry-After`` (``retry_after``, seconds); the caller should honour it,
  capped by its own schedule.
- No HTTP answer (timeout, refused, reset, closed, TLS error): retried.
- The guard refused the address actually connected to (DNS changed since the URL was accepted):
  not retried; this is a policy decision, not a transient failure.
"""

from __future__ import annotations

import base64
import logging
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.client import RemoteDisconnected

import urllib3
from standardwebhooks import Webhook
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from models.errors import Invalid

log = logging.getLogger(__name__)

#: Sent as ``user-agent`` so receivers can recognise (and allow-list) us.
USER_AGENT = "chute-webhooks/1"

#: The prefix of a Standard Webhooks secret.
SECRET_PREFIX = "whsec_"

#: At most this many bytes of a response are read: we keep an excerpt, not the body.
MAX_RESPONSE_BYTES = 64 * 1024

#: Characters of the response body kept in ``Outcome.response_excerpt``.
EXCERPT_CHARS = 512

#: Statuses whose ``Retry-After`` header is honoured (RFC 9110 §10.2.3, RFC 6585 §4).
_RETRY_AFTER_STATUSES = frozenset({429, 503})

_READ_CHUNK = 16 * 1024


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 24 random bytes (the spec's minimum)."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(24)).decode("ascii")


def event_id() -> str:
    """A new ``webhook-id``: ``msg_`` and 26 url-safe random characters (156 bits).

    The id is made once per event and kept across retries, so receivers can deduplicate.
    """
    return "msg_" + _secrets.token_urlsafe(19)  # 19 bytes are exactly 26 base64 characters


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` per secret, space-separated.

    Several secrets are signed with during a rotation, so that a receiver that has either the old or
    the new secret accepts the message.

    Parameters:
        secrets: ``whsec_`` secrets, the current one first; duplicates are signed once.
        msg_id: the ``webhook-id``.
        timestamp: the ``webhook-timestamp``, unix seconds.
        body: the exact bytes sent; must be UTF-8 (it is JSON), as the reference verifiers decode it.

    Raises:
        ValueError: no secret, a secret without the ``whsec_`` prefix, or a body that is not UTF-8.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is needed to sign")
    bad = [s for s in secrets if not s.startswith(SECRET_PREFIX) or len(s) == len(SECRET_PREFIX)]
    if bad:
        raise ValueError(f"webhook secrets must start with {SECRET_PREFIX!r} and not be empty")
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    text = body.decode("utf-8")
    return " ".join(Webhook(s).sign(msg_id, when, text) for s in dict.fromkeys(secrets))


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery of ``body``: content type, user agent and the three
    Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).

    Raises:
        ValueError: as :func:`sign`.
    """
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
    }


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did; see the module docstring for what is retried."""

    #: Any 2xx answer.
    ok: bool
    #: The HTTP status, or None when there was no answer (timeout, refused, reset, guard refusal).
    status_code: int | None
    #: A short description of the failure ("timeout", "HTTP 500" ...), None when ``ok``.
    error: str | None
    duration_ms: int
    #: The first characters of the response body, decoded leniently (for the attempt log).
    response_excerpt: str
    #: Seconds the receiver asked us to wait (``Retry-After`` on 429/503), else None.
    retry_after: float | None
    #: 410: stop delivering to this URL.
    gone: bool
    #: Worth another attempt later.
    retryable: bool


def deliver(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, pool: urllib3.PoolManager) -> Outcome:
    """POST ``body`` to ``url`` once and describe the result.

    Parameters:
        url: the receiver; already accepted by the URL guard.
        body: the exact bytes that were signed.
        headers: from :func:`headers`.
        timeout: seconds for the connection, for each read, and the budget for reading the body
            once the status is known (a receiver dripping bytes cannot hold the worker).
        pool: where connections come from; use ``UrlGuard.pool_manager`` so that the address
            actually connected to is checked.

    Returns:
        An :class:`Outcome`; network and HTTP problems are never raised.
    """
    started = time.monotonic()

    def elapsed_ms() -> int:
        return round((time.monotonic() - started) * 1000)

    def no_answer(error: str, *, retryable: bool = True) -> Outcome:
        return Outcome(
            ok=False,
            status_code=None,
            error=error,
            duration_ms=elapsed_ms(),
            response_excerpt="",
            retry_after=None,
            gone=False,
            retryable=retryable,
        )

    try:
        response = pool.request(
            "POST",
            url,
            body=body,
            headers=dict(headers),
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
            redirect=False,
            preload_content=False,
        )
    except Invalid as e:  # the guard refused the peer address (actors.url_guard)
        return no_answer(f"address refused: {e.details.get('reason', e.message)}", retryable=False)
    except LocationValueError as e:
        return no_answer(f"invalid URL: {e}", retryable=False)
    except HTTPError as e:
        return no_answer(_describe(e))
    except OSError as e:  # not wrapped by urllib3 (rare: raised outside its own try blocks)
        return no_answer(f"connection error: {e}")

    try:
        data = _read_some(response, deadline=time.monotonic() + timeout)
    finally:
        response.release_conn()
    status = response.status
    ok = 200 <= status < 300
    gone = status == 410
    if ok:
        error = None
    elif 300 <= status < 400:
        error = f"redirect not followed ({status})"
    else:
        error = f"HTTP {status}"
    retry_after = None
    if status in _RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    return Outcome(
        ok=ok,
        status_code=status,
        error=error,
        duration_ms=elapsed_ms(),
        response_excerpt=_excerpt(data),
        retry_after=retry_after,
        gone=gone,
        retryable=not ok and not gone,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date; None if absent
    or unreadable. A date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates are UTC by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _read_some(response: urllib3.BaseHTTPResponse, *, deadline: float) -> bytes:
    """Up to :data:`MAX_RESPONSE_BYTES` of the body, stopping early at ``deadline`` or on an error.

    The status is already known, so a body that fails half-way is kept as far as it came. A
    connection whose body was not read to the end is closed, not returned to the pool.
    """
    chunks: list[bytes] = []
    size = 0
    complete = False
    try:
        while size < MAX_RESPONSE_BYTES and time.monotonic() < deadline:
            chunk = response.read(min(_READ_CHUNK, MAX_RESPONSE_BYTES - size))
            if not chunk:
                complete = True
                break
            chunks.append(chunk)
            size += len(chunk)
    except (HTTPError, OSError) as e:
        log.debug("reading a webhook response failed after %d bytes: %s", size, e)
    if not complete:
        response.close()
    return b"".join(chunks)


def _excerpt(data: bytes) -> str:
    # A character is at most 4 UTF-8 bytes: decode no more than needed.
    return data[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _describe(error: HTTPError) -> str:
    """A short, stable description of a failure without an HTTP answer."""
    if isinstance(error, MaxRetryError) and error.reason is not None:  # a pool configured with retries
        return _describe(error.reason) if isinstance(error.reason, HTTPError) else str(error.reason)
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it (and its own
    # subclass NameResolutionError) first.
    if isinstance(error, NameResolutionError):
        return "name resolution failed"
    if isinstance(error, NewConnectionError):
        cause = error.__cause__
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return f"connection failed: {cause or error}"
    if isinstance(error, ConnectTimeoutError | ReadTimeoutError):
        return "timeout"
    if isinstance(error, SSLError):
        return f"TLS error: {error}"
    if isinstance(error, ProtocolError):
        cause = error.args[1] if len(error.args) > 1 else error.__cause__
        if isinstance(cause, RemoteDisconnected):  # before ConnectionResetError: it subclasses it
            return "connection closed without a response"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, TimeoutError):
            return "timeout"
        return f"connection error: {cause or error}"
    return f"{type(error).__name__}: {error}"
