"""Webhook isolation: deliveries on their own queue (a hanging consumer never holds a stage), a cap
on deliveries in flight per destination, a circuit breaker per endpoint that the tenant can see,
and throttled replays. Real sockets to a real receiver on loopback; the StubBroker's workers."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator

import dramatiq
import pytest

from models.settings import configure
from tests.conftest import TenantKeys
from tests.support.services import wait_until
from tests.support.webhook_receiver import Reply, WebhookReceiver

STAGE_QUEUES = ("assemble", "upload", "extract", "notify")


def send_file(client, tenant: TenantKeys, url: str | None) -> str:  # type: ignore[no-untyped-def]
    data = {"file": [(io.BytesIO(b"hello fairness"), "hello.txt")]}
    if url:
        data["webhook_url"] = url  # type: ignore[assignment]
    response = client.post("/v1/jobs", data=data, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["jobs"][0]["job_id"])


def job(client, tenant: TenantKeys, job_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return dict(client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).get_json())


@pytest.fixture
def receiver(tenant: TenantKeys) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=tenant.webhook_secret) as running:
        yield running


@pytest.fixture
def groups(stub_broker: dramatiq.Broker, settings):  # type: ignore[no-untyped-def]
    """Two worker groups as ``chute worker`` runs them: the stages, and the webhook queue."""
    started: list[dramatiq.Worker] = []

    def start(stage_threads: int = 2, webhook_threads: int = 1) -> None:
        for queues, threads in ((STAGE_QUEUES, stage_threads), (("webhooks",), webhook_threads)):
            names = {settings.queue(q) for q in queues}
            names |= {dramatiq.common.dq_name(n) for n in names}
            worker = dramatiq.Worker(stub_broker, queues=names, worker_threads=threads, worker_timeout=50)
            worker.start()
            started.append(worker)

    yield start
    for worker in started:
        worker.stop()
    stub_broker.middleware[:] = [m for m in stub_broker.middleware if type(m).__name__ != "_WorkerMiddleware"]
    # A stopped worker leaves the delayed messages it held (an open breaker's deferrals) counted as
    # unfinished on the StubBroker's queues: forget them, or the next test's join would wait on them.
    for queue in stub_broker.queues.values():
        with queue.mutex:
            queue.queue.clear()
            queue.unfinished_tasks = 0
            queue.all_tasks_done.notify_all()


def test_a_hanging_consumer_never_holds_the_pipeline(client, settings, tenant, other_tenant, groups) -> None:  # type: ignore[no-untyped-def]
    """Tenant A's consumer hangs; its jobs and tenant B's jobs complete while A's deliveries hang."""
    configure(dataclasses.replace(settings, webhook_timeout_seconds=25))
    with WebhookReceiver(default=Reply.hang(25)) as hanging:
        groups(stage_threads=2, webhook_threads=1)
        stuck = [send_file(client, tenant, hanging.url()) for _ in range(3)]
        hanging.wait_for(1, timeout=30)  # the one webhook thread now hangs on A's consumer
        other = send_file(client, other_tenant, None)
        wait_until(lambda: job(client, other_tenant, other)["status"] == "completed", 60, what="B's job")
        wait_until(lambda: all(job(client, tenant, j)["status"] == "completed" for j in stuck), 60, what="A's jobs")
        assert len(hanging.requests) == 1  # still hanging: no attempt has even finished
        assert all(job(client, tenant, j)["webhook"]["attempts"] == 0 for j in stuck)


def test_the_breaker_opens_is_visible_and_closes_after_a_good_probe(client, settings, tenant, receiver, groups) -> None:  # type: ignore[no-untyped-def]
    configure(dataclasses.replace(settings, webhook_breaker_threshold=2, webhook_breaker_cooldown_seconds=1.5,
                                  webhook_schedule=(0, 0.05, 0.05, 0.05, 0.05)))  # fmt: skip
    receiver.script(Reply.error(500), Reply.error(500))
    groups()
    job_id = send_file(client, tenant, receiver.url())
    receiver.wait_for(2, timeout=30)

    def endpoint() -> dict:  # type: ignore[type-arg]
        listed = client.get("/v1/webhook-endpoints", headers=tenant.headers).get_json()["endpoints"]
        assert len(listed) == 1
        return dict(listed[0])

    opened = wait_until(lambda: (e := endpoint())["state"] == "open" and e, 30, what="the breaker to open")
    assert opened["url"] == receiver.url() and opened["consecutive_failures"] == 2
    assert opened["last_error"] == "HTTP 500" and opened["next_attempt_at"]
    assert job(client, tenant, job_id)["webhook"] == {"status": "pending", "attempts": 2}
    first, second, probe = receiver.wait_for(3, timeout=30)
    assert probe.received_at - second.received_at >= 1.5  # nothing went while it was open
    wait_until(lambda: job(client, tenant, job_id)["webhook"]["status"] == "delivered", 30, what="delivery")
    # The delivery is recorded first; the breaker closes in the same run a moment later.
    closed = wait_until(lambda: (e := endpoint())["state"] == "closed" and e, 30, what="the breaker to close")
    assert closed["state"] == "closed" and closed["consecutive_failures"] == 0 and closed["last_success_at"]
    assert job(client, tenant, job_id)["webhook"] == {"status": "delivered", "attempts": 3}


def test_an_open_breaker_can_be_reset_by_the_tenant(client, settings, tenant, other_tenant, receiver, groups) -> None:  # type: ignore[no-untyped-def]
    configure(dataclasses.replace(settings, webhook_breaker_threshold=1, webhook_breaker_cooldown_seconds=3600,
                                  webhook_schedule=(0, 0.05)))  # fmt: skip
    receiver.script(Reply.error(500))
    groups()
    job_id = send_file(client, tenant, receiver.url())
    receiver.wait_for(1, timeout=30)
    endpoints = lambda: client.get("/v1/webhook-endpoints", headers=tenant.headers).get_json()["endpoints"]  # noqa: E731
    wait_until(lambda: endpoints()[0]["state"] == "open", 30, what="the breaker to open")
    endpoint_id = endpoints()[0]["endpoint_id"]
    assert client.post(f"/v1/webhook-endpoints/{endpoint_id}/reset", headers=other_tenant.headers).status_code == 404
    reset = client.post(f"/v1/webhook-endpoints/{endpoint_id}/reset", headers=tenant.headers)
    assert reset.status_code == 200 and reset.get_json()["state"] == "closed"
    assert client.post(f"/v1/jobs/{job_id}/deliveries", headers=tenant.headers).status_code == 202
    receiver.wait_for(2, timeout=30)
    wait_until(lambda: job(client, tenant, job_id)["webhook"]["status"] == "delivered", 30, what="delivery")


def test_deliveries_to_one_destination_are_capped(client, settings, tenant, receiver, groups) -> None:  # type: ignore[no-untyped-def]
    """Cap 1: three events to one consumer that takes 0.6 s each go one after another, although
    three webhook threads are free."""
    configure(dataclasses.replace(settings, webhook_max_in_flight_per_destination=1))
    receiver.default = Reply.hang(0.6)
    groups(webhook_threads=3)
    for _ in range(3):
        send_file(client, tenant, receiver.url())
    requests = sorted(receiver.wait_for(3, timeout=60), key=lambda r: r.received_at)
    gaps = [b.received_at - a.received_at for a, b in zip(requests, requests[1:], strict=False)]
    assert all(gap >= 0.55 for gap in gaps), gaps


def test_a_replay_of_an_event_already_on_its_way_is_not_sent_twice(client, tenant, receiver, groups) -> None:  # type: ignore[no-untyped-def]
    groups()
    job_id = send_file(client, tenant, receiver.url())
    receiver.wait_for(1, timeout=30)
    wait_until(lambda: job(client, tenant, job_id)["webhook"]["status"] == "delivered", 30, what="delivery")
    receiver.default = Reply.hang(1.5)
    codes = {client.post(f"/v1/jobs/{job_id}/deliveries", headers=tenant.headers).status_code for _ in range(5)}
    assert codes == {202}
    wait_until(lambda: job(client, tenant, job_id)["webhook"]["status"] == "delivered", 30, what="the replay")
    assert len(receiver.requests) == 2
