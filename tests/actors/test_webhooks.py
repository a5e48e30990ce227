"""Webhook signing (Standard Webhooks test vector, rotation) and single delivery attempts against a
real receiver on loopback."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
import urllib3
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from actors import webhooks
from actors.url_guard import UrlGuard
from actors.webhooks import Outcome, deliver, event_id, generate_secret, parse_retry_after, sign
from tests.support.webhook_receiver import Reply, WebhookReceiver

#: The Standard Webhooks specification's example.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = generate_secret()
#: Short, so the timeout cases stay fast; loopback answers in well under this.
TIMEOUT = 0.5


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as r:
        yield r


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    with urllib3.PoolManager() as p:
        yield p


def event_body(**data: object) -> bytes:
    return json.dumps({"type": "job.completed", "timestamp": "2026-01-01T00:00:00Z", "data": data}).encode()


def send(receiver: WebhookReceiver, pool: urllib3.PoolManager, body: bytes | None = None) -> Outcome:
    body = event_body(job_id="job_1") if body is None else body
    hdrs = webhooks.headers([SECRET], event_id(), int(time.time()), body)
    return deliver(receiver.url(), body, hdrs, timeout=TIMEOUT, pool=pool)


# -- signing ---------------------------------------------------------------------------------------


def test_sign_matches_the_specification_test_vector() -> None:
    assert sign([SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_two_secrets_give_two_signatures_and_either_secret_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    body = event_body(job_id="job_2", filename="r\u00e9sum\u00e9.pdf")
    now = int(time.time())
    hdrs = webhooks.headers([new, old], "msg_rotation", now, body)

    signatures = hdrs["webhook-signature"].split(" ")
    assert signatures == [sign([new], "msg_rotation", now, body), sign([old], "msg_rotation", now, body)]
    assert all(s.startswith("v1,") for s in signatures)
    for secret in (old, new):
        assert Webhook(secret).verify(body, hdrs) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, hdrs)


def test_headers_carry_the_standard_webhooks_fields() -> None:
    hdrs = webhooks.headers([SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert hdrs == {
        "content-type": "application/json",
        "user-agent": "chute-webhooks/1",
        "webhook-id": SPEC_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": SPEC_SIGNATURE,
    }


def test_a_duplicated_secret_is_signed_once() -> None:
    assert sign([SPEC_SECRET, SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


@pytest.mark.parametrize(
    ("secrets", "body"),
    [
        ([], b"{}"),
        (["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], b"{}"),  # no whsec_ prefix: probably not a secret
        (["whsec_"], b"{}"),
        ([SPEC_SECRET], b"\xff\xfe not utf-8"),
    ],
)
def test_sign_refuses_what_it_cannot_sign_correctly(secrets: list[str], body: bytes) -> None:
    with pytest.raises(ValueError):
        sign(secrets, SPEC_ID, SPEC_TIMESTAMP, body)


def test_generated_secrets_are_24_random_bytes_usable_by_standardwebhooks() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 24
    Webhook(first)  # accepted as a secret


def test_event_ids_are_msg_and_26_url_safe_characters() -> None:
    ids = {event_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"msg_[A-Za-z0-9_-]{26}", i) for i in ids)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (formatdate(1_000_030, usegmt=True), 30.0),
        (formatdate(999_000, usegmt=True), 0.0),  # already past
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=1_000_000) == expected


# -- delivery --------------------------------------------------------------------------------------


def test_a_2xx_is_delivered_byte_exact_and_verifies_as_a_consumer_would(
    receiver: WebhookReceiver, pool: urllib3.PoolManager
) -> None:
    receiver.script(Reply.ok(status=202, body=b'{"thanks": true}'))
    body = b'{"type":"job.completed",  "data": {"name": "\xc3\xa9t\xc3\xa9 \\u00e9"}}\n'
    msg_id, now = event_id(), int(time.time())
    hdrs = webhooks.headers([SECRET], msg_id, now, body)

    outcome = deliver(receiver.url("/hooks/chute?x=1"), body, hdrs, timeout=TIMEOUT, pool=pool)

    assert outcome.ok and outcome.status_code == 202 and outcome.error is None
    assert outcome.response_excerpt == '{"thanks": true}'
    assert not outcome.retryable and not outcome.gone and outcome.retry_after is None
    assert outcome.duration_ms >= 0
    (request,) = receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hooks/chute?x=1"
    assert request.body == body
    assert request.verified is True
    for name, value in hdrs.items():
        assert request.headers[name] == value
    assert request.headers["content-length"] == str(len(body))
    # What a consumer does with the raw body and headers:
    assert Webhook(SECRET).verify(request.body, request.headers) == json.loads(body)


def test_a_tampered_body_does_not_verify(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    body = event_body(job_id="job_3")
    hdrs = webhooks.headers([SECRET], event_id(), int(time.time()), body)
    deliver(receiver.url(), body.replace(b"job_3", b"job_4"), hdrs, timeout=TIMEOUT, pool=pool)
    (request,) = receiver.wait_for(1)
    assert request.verified is False and request.verify_error


def test_a_5xx_is_a_retryable_failure(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    receiver.script(Reply.error(500, b"database is down"))
    outcome = send(receiver, pool)
    assert (outcome.ok, outcome.status_code, outcome.error) == (False, 500, "HTTP 500")
    assert outcome.retryable and not outcome.gone
    assert outcome.response_excerpt == "database is down"
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [400, 401, 404, 408, 409, 422])
def test_other_4xx_are_retried_too(receiver: WebhookReceiver, pool: urllib3.PoolManager, status: int) -> None:
    receiver.script(Reply.error(status))
    outcome = send(receiver, pool)
    assert outcome.status_code == status and not outcome.ok
    assert outcome.retryable and not outcome.gone


def test_410_means_gone_and_is_not_retried(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    receiver.script(Reply.gone())
    outcome = send(receiver, pool)
    assert (outcome.ok, outcome.status_code, outcome.gone, outcome.retryable) == (False, 410, True, False)
    assert outcome.error == "HTTP 410"


def test_a_redirect_is_not_followed(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    receiver.script(Reply.redirect(receiver.url("/elsewhere")))
    outcome = send(receiver, pool)
    assert (outcome.ok, outcome.status_code) == (False, 302)
    assert outcome.error == "redirect not followed (302)"
    assert outcome.retryable
    time.sleep(0.2)  # a followed redirect would arrive within this
    assert [r.path for r in receiver.requests] == ["/hook"]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_read(receiver: WebhookReceiver, pool: urllib3.PoolManager, status: int) -> None:
    receiver.script(Reply.too_many(retry_after=7, status=status))
    outcome = send(receiver, pool)
    assert outcome.status_code == status
    assert outcome.retry_after == 7.0
    assert outcome.retryable and not outcome.ok


def test_retry_after_as_an_http_date_is_read(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    receiver.script(Reply.too_many(retry_after=formatdate(time.time() + 60, usegmt=True)))
    outcome = send(receiver, pool)
    assert outcome.retry_after is not None and 55 <= outcome.retry_after <= 60


def test_retry_after_is_ignored_on_other_statuses(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    receiver.script(Reply.too_many(retry_after=7, status=500))
    assert send(receiver, pool).retry_after is None


def test_a_receiver_that_hangs_is_a_timeout(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    receiver.script(Reply.hang(seconds=10))
    outcome = send(receiver, pool)
    assert (outcome.ok, outcome.status_code, outcome.error) == (False, None, "timeout")
    assert outcome.retryable
    assert outcome.duration_ms >= TIMEOUT * 1000 * 0.9
    assert len(receiver.wait_for(1)) == 1  # it did get the request


def test_a_connection_closed_without_answer(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    receiver.script(Reply.close())
    outcome = send(receiver, pool)
    assert (outcome.ok, outcome.status_code) == (False, None)
    assert outcome.error == "connection closed without a response"
    assert outcome.retryable


def test_a_refused_connection(pool: urllib3.PoolManager) -> None:
    with WebhookReceiver() as gone:
        url = gone.url()
    outcome = deliver(url, b"{}", {}, timeout=TIMEOUT, pool=pool)
    assert (outcome.ok, outcome.status_code, outcome.error) == (False, None, "connection refused")
    assert outcome.retryable


def test_a_url_urllib3_cannot_use_is_a_permanent_failure(pool: urllib3.PoolManager) -> None:
    outcome = deliver("gopher://127.0.0.1/", b"{}", {}, timeout=TIMEOUT, pool=pool)
    assert outcome.status_code is None and not outcome.ok
    assert outcome.error is not None and outcome.error.startswith("invalid URL")
    assert not outcome.retryable


def test_the_excerpt_is_truncated_and_decoded_leniently(receiver: WebhookReceiver, pool: urllib3.PoolManager) -> None:
    big = "\u00e9" * 600 + "x" * 200_000  # 2-byte characters, and far more than is read
    receiver.script(Reply.ok(body=big.encode()), Reply.error(500, b"\xff\xfebad bytes"))

    outcome = send(receiver, pool)
    assert outcome.ok
    assert outcome.response_excerpt == "\u00e9" * webhooks.EXCERPT_CHARS

    outcome = send(receiver, pool)
    assert outcome.status_code == 500
    assert outcome.response_excerpt == "\ufffd\ufffdbad bytes"


def test_the_pool_is_reusable_after_a_partly_read_response(
    receiver: WebhookReceiver, pool: urllib3.PoolManager
) -> None:
    receiver.script(Reply.ok(body=b"y" * (webhooks.MAX_RESPONSE_BYTES * 2)), Reply.ok(body=b"second"))
    assert send(receiver, pool).ok
    second = send(receiver, pool)
    assert second.ok and second.response_excerpt == "second"
    assert len(receiver.wait_for(2)) == 2


def test_delivery_through_a_guard_that_allows_loopback(receiver: WebhookReceiver) -> None:
    guard = UrlGuard(["loopback"])
    guard.check_url(receiver.url())
    with guard.pool_manager(TIMEOUT) as guarded:
        outcome = send(receiver, guarded)
    assert outcome.ok
    assert receiver.wait_for(1)[0].verified is True
