"""Rate limits: per credential and class of route, per tenant, per client address without a valid
credential; 429 with Retry-After and the IETF RateLimit headers; shared through the machine's
Redis (a key prefix of this run's own), and passing requests when Redis does not answer."""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from models.db import session_scope
from models.settings import Settings, configure
from models.tenant import issue_key
from tests.conftest import TenantKeys
from tests.support import services
from web import create_app

#: The machine's Redis (DESIGN.md: 127.0.0.1:6379 on development and CI machines).
REDIS_URL = os.environ.get("CHUTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    if not services.port_open("127.0.0.1", 6379):
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not reachable on 127.0.0.1:6379")
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    require_redis()
    prefix = f"chute_test_{os.getpid()}_{secrets.token_hex(4)}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def limited_app(settings: Settings, **limits: str) -> Flask:
    app = create_app(configure(dataclasses.replace(settings, **limits)))
    app.config["TESTING"] = True
    return app


def another_key(tenant: TenantKeys) -> dict[str, str]:
    with session_scope() as session:
        issued = issue_key(session, tenant.name, "second")
    return {"Authorization": f"Bearer {issued.api_key}"}


def test_a_credential_over_its_read_limit_gets_429_with_headers(settings, stub_broker, tenant, other_tenant) -> None:  # type: ignore[no-untyped-def]
    client = limited_app(settings, rate_limit_read="3/minute").test_client()
    answers = [client.get("/v1/jobs", headers=tenant.headers) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    first, refused = answers[0], answers[3]
    assert '"key-read-60s";q=3;w=60' in first.headers["RateLimit-Policy"]
    assert re.fullmatch(r'"key-read-60s";r=2;t=\d+', first.headers["RateLimit"])
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["policy"] == "key-read-60s"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert re.fullmatch(r'"key-read-60s";r=0;t=\d+', refused.headers["RateLimit"])
    # Another credential of the same tenant, and another tenant, have their own budgets;
    # writes are a class of their own.
    assert client.get("/v1/jobs", headers=another_key(tenant)).status_code == 200
    assert client.get("/v1/jobs", headers=other_tenant.headers).status_code == 200
    assert client.post("/v1/uploads", json={"filename": "a", "size": 1}, headers=tenant.headers).status_code == 201


def test_a_tenants_keys_share_the_tenant_limit(settings, stub_broker, tenant, other_tenant) -> None:  # type: ignore[no-untyped-def]
    client = limited_app(settings, rate_limit_tenant="4/minute").test_client()
    second = another_key(tenant)
    codes = [client.get("/v1/jobs", headers=h).status_code for h in (tenant.headers, second) * 3]
    assert codes == [200, 200, 200, 200, 429, 429]
    refused = client.get("/v1/jobs", headers=second)
    assert refused.get_json()["error"]["details"]["policy"] == "tenant-60s"
    assert client.get("/v1/jobs", headers=other_tenant.headers).status_code == 200


def test_bad_credentials_are_limited_per_address(settings, stub_broker, tenant) -> None:  # type: ignore[no-untyped-def]
    client = limited_app(settings, rate_limit_anonymous="3/minute").test_client()
    codes = [client.get("/v1/jobs", headers={"Authorization": f"Bearer chute_bad{i}"}).status_code for i in range(3)]
    assert codes == [401, 401, 401]
    assert client.get("/v1/jobs").status_code == 429  # no credential at all counts too
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer chute_bad9"}).status_code == 429
    # Another address is not affected, and a valid key from the same address still passes.
    assert client.get("/v1/jobs", environ_base={"REMOTE_ADDR": "10.9.8.7"}).status_code == 401
    assert client.get("/v1/jobs", headers=tenant.headers).status_code == 200


def test_probes_are_never_limited_but_other_public_routes_are(settings, stub_broker, tenant) -> None:  # type: ignore[no-untyped-def]
    client = limited_app(settings, rate_limit_public="2/minute", rate_limit_anonymous="1/minute").test_client()
    assert all(client.get(path).status_code == 200 for path in ("/healthz", "/metrics") * 5)
    codes = [client.get("/openapi.json").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    # A budget of its own: the address may still fail auth once, and a valid key is not refused.
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer chute_bad"}).status_code == 401
    assert client.get("/v1/jobs", headers=tenant.headers).status_code == 200


def test_web_processes_share_the_counters_in_redis(settings, stub_broker, tenant, redis_prefix) -> None:  # type: ignore[no-untyped-def]
    limits = {"rate_limit_read": "4/minute", "redis_url": REDIS_URL, "rate_limit_prefix": redis_prefix}
    one = limited_app(settings, **limits).test_client()
    # A second app on other (equal) settings objects builds its own limiter, as another process would.
    two = limited_app(dataclasses.replace(settings, upload_ttl_seconds=settings.upload_ttl_seconds + 1),
                      **limits).test_client()  # fmt: skip
    codes = [c.get("/v1/jobs", headers=tenant.headers).status_code for c in (one, two, one, two, one)]
    assert codes == [200, 200, 200, 200, 429]
    assert any(redis.Redis.from_url(REDIS_URL).scan_iter(f"{redis_prefix}*"))  # the counters live in Redis


def test_requests_pass_when_redis_does_not_answer(settings, stub_broker, tenant) -> None:  # type: ignore[no-untyped-def]
    dead = f"redis://127.0.0.1:{services.free_port()}/0"
    client = limited_app(settings, rate_limit_read="1/minute", redis_url=dead).test_client()
    answers = [client.get("/v1/jobs", headers=tenant.headers) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert "RateLimit" not in answers[0].headers


def test_replays_have_a_limit_of_their_own(settings, stub_broker, tenant) -> None:  # type: ignore[no-untyped-def]
    client = limited_app(settings, rate_limit_replay="2/minute").test_client()
    unknown = "/v1/jobs/job_000000000000000000000000/deliveries"  # well-formed, so the limiter sees it
    codes = [client.post(unknown, headers=tenant.headers).status_code for _ in range(3)]
    assert codes == [404, 404, 429]
    assert client.get("/v1/jobs", headers=tenant.headers).status_code == 200
