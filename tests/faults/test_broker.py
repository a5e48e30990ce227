"""The broker losing messages, going away, and holding publishers back."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from tests.faults.conftest import FaultStack
from tests.faults.history import History
from tests.support import services


def test_confirmed_messages_that_are_lost_are_sent_again(stack: FaultStack, history: History) -> None:
    """Finding 4: the broker confirmed eight messages, then lost them (their queue deleted); the
    sweeper must notice the jobs that wait in ``queued`` and send them again."""
    stack.worker.stop()
    outs = [stack.upload(history, os.urandom(20_000), f"lost-{i}.bin") for i in range(8)]
    assert stack.rabbit.queue_depth("chute.assemble") >= 8
    stack.rabbit.delete_queue("chute.assemble")
    stack.start_worker()
    assert all(stack.job_row(o["job_id"])["status"] in ("queued", "processing", "completed") for o in outs)
    assert stack.check(history) == []


def _batch(stack: FaultStack, history: History, count: int, tag: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    files = [("file", (f"{tag}-{i}.bin", os.urandom(10_000 + i), "application/octet-stream")) for i in range(count)]
    status, body = stack.call("POST", "/v1/jobs", files=files, data={"webhook_url": stack.receiver.url()})
    if status == 202:
        for entry, (_, (_, data, _)) in zip(body["jobs"], files, strict=True):
            history.record(entry["job_id"], entry["upload_id"], data)
    return status, body


def test_the_broker_down_at_post_jobs_and_cancel(stack: FaultStack, history: History) -> None:
    """Finding 5: with the broker down, POST /v1/jobs answers 202 with the committed jobs (the
    sweeper publishes them), ``complete`` answers 503 and its retry returns the same job, and
    DELETE cancels one of those jobs (202) with its ``job.cancelled`` webhook sent once the
    broker is back."""
    pending_data = os.urandom(5_000)
    pending = stack.upload(history, pending_data, "pending.bin", complete=False)
    stack.rabbit.stop_app()
    try:
        status, body = _batch(stack, history, 3, "down")
        assert status == 202 and body["total"] == 3, body
        status, error = stack.call("POST", f"/v1/uploads/{pending['upload_id']}/complete")
        assert status == 503 and error["error"]["code"] == "broker_unavailable", error
        cancelled = body["jobs"][0]["job_id"]
        status, answer = stack.call("DELETE", f"/v1/jobs/{cancelled}")
        assert status == 202 and answer["status"] == "cancelled", answer
        history.expect(cancelled, "cancelled")
    finally:
        stack.rabbit.start_app()
    status, body = stack.call("POST", f"/v1/uploads/{pending['upload_id']}/complete")
    assert status == 202, body
    history.record(body["job_id"], pending["upload_id"], pending_data)
    assert stack.check(history) == []


def test_the_broker_restarts_during_a_burst(stack: FaultStack, history: History) -> None:
    """Held: the broker stops and starts while clients send a burst of jobs (the clients retry
    what answered 503 or 429, as they are told to)."""
    def client(i: int) -> None:
        data = os.urandom(30_000)
        out = stack.upload(history, data, f"burst-{i}.bin", complete=False)
        for _ in range(240):
            status, body = stack.call("POST", f"/v1/uploads/{out['upload_id']}/complete")
            if status == 202:
                history.record(body["job_id"], out["upload_id"], data)
                return
            if status == 429:  # a client that retries fast meets the write limit: it waits as told
                time.sleep(body["error"]["details"]["retry_after"])
                continue
            assert status == 503, body
            services.wait_until(lambda: services.port_open("127.0.0.1", stack.rabbit.port), 120, what="RabbitMQ")
            time.sleep(0.2)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client, i) for i in range(12)]
        stack.rabbit.stop_app()
        stack.rabbit.start_app()
        for future in futures:
            future.result()
    assert len(history) == 12
    assert stack.check(history) == []


def test_a_memory_alarm_answers_fast_and_runs_each_job_once(stack: FaultStack, history: History) -> None:
    """Finding 8: during a memory alarm publishes are held back; ``complete`` must answer (202 or
    503, not hang until the alarm clears), /readyz must say not ready, and each job must end with
    one object once the alarm clears. The alarm stays up until every call has answered: a call
    that hung would hang until the client's timeout and fail the test."""
    uploads = [(stack.upload(history, data, f"alarm-{i}.bin", complete=False), data)
               for i, data in enumerate(os.urandom(20_000) for _ in range(8))]  # fmt: skip
    stack.rabbit.memory_alarm(True)
    try:
        status, body = services.wait_until(lambda: (r := stack.call("GET", "/readyz"))[0] == 503 and r, 30,
                                           what="/readyz to see the alarm")  # fmt: skip
        assert body["error"]["code"] == "not_ready", body
        assert not {c["name"]: c["ok"] for c in body["error"]["details"]["checks"]}["broker"], body
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda u: stack.call("POST", f"/v1/uploads/{u[0]['upload_id']}/complete"),
                                    uploads))  # fmt: skip
    finally:
        stack.rabbit.memory_alarm(False)
    assert {status for status, _ in answers} <= {202, 503}, answers
    for (out, data), (status, body) in zip(uploads, answers, strict=True):
        if status == 503:
            status, body = stack.call("POST", f"/v1/uploads/{out['upload_id']}/complete")
        assert status == 202, body
        history.record(body["job_id"], out["upload_id"], data)
    assert stack.call("GET", "/readyz")[0] == 200
    assert stack.check(history) == []
