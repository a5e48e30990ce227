"""Faults that must lose no job: a worker killed with SIGKILL mid-job, and a RabbitMQ restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_pipeline import wait_for_job
from tests.support import services
from tests.support.uploading import chunked_upload


def test_sigkilled_worker_loses_no_job(stack: Stack) -> None:
    stack.proxy.cut()  # hold the job in its upload stage, retrying against a dead store
    try:
        out = chunked_upload(stack.call, b"killed worker\n" * 200, filename="kill.txt", chunk_size=1024)
        services.wait_until(
            lambda: stack.call("GET", f"/v1/jobs/{out['job_id']}")[1]["stage"] == "upload", 20, what="upload stage"
        )
        stack.worker.kill()  # SIGKILL: its unacked messages go back to the queue
    finally:
        stack.proxy.restore()
    # A job sent while no worker runs waits in RabbitMQ.
    queued = chunked_upload(stack.call, b"sent while down\n" * 10, filename="down.txt", chunk_size=1024)
    status, job = stack.call("GET", f"/v1/jobs/{queued['job_id']}")
    assert job["status"] == "queued"
    stack.restart_worker()
    assert wait_for_job(stack, out["job_id"])["status"] == "completed"
    assert wait_for_job(stack, queued["job_id"])["status"] == "completed"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@pytest.mark.skipif(
    not (os.environ.get("CI") == "true" or os.environ.get("CHUTE_TEST_BROKER_RESTART") == "1"),
    reason="restarts the machine's shared RabbitMQ: runs under CI or with CHUTE_TEST_BROKER_RESTART=1",
)
@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
def test_broker_restart_loses_no_job(stack: Stack) -> None:
    before = chunked_upload(stack.call, b"before the restart\n" * 50, filename="before.txt", chunk_size=1024)
    pending = chunked_upload(stack.call, b"completed during\n" * 50, filename="during.txt", chunk_size=1024,
                             complete=False)  # fmt: skip
    _rabbitmqctl("stop_app")
    try:
        status, body = stack.call("POST", f"/v1/uploads/{pending['upload_id']}/complete")
        # The job row is committed; the publish is refused, so the client is told to try again.
        assert status == 503 and body["error"]["code"] == "broker_unavailable", body
    finally:
        _rabbitmqctl("start_app")
        _rabbitmqctl("await_startup")
    services.wait_until(lambda: services.port_open("127.0.0.1", 5672), 60, what="RabbitMQ")
    deadline = time.monotonic() + 60
    while True:  # the client's retry of complete returns the same job and publishes it
        status, body = stack.call("POST", f"/v1/uploads/{pending['upload_id']}/complete")
        if status == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 202, body
    assert wait_for_job(stack, before["job_id"], timeout=120)["status"] == "completed"
    assert wait_for_job(stack, body["job_id"], timeout=120)["status"] == "completed"
