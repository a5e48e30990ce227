"""What ops see: readiness of every dependency, Prometheus metrics from web and worker, one
queue per stage on the broker."""

from __future__ import annotations

import requests

from tests.e2e.conftest import Stack
from tests.support import services
from tests.support.uploading import chunked_upload


def test_ready_when_every_dependency_answers_and_503_naming_the_one_that_does_not(stack: Stack) -> None:
    body = requests.get(stack.base_url + "/readyz", timeout=10).json()
    assert body["status"] == "ready" and {c["name"] for c in body["checks"]} == {"database", "broker", "storage"}
    stack.proxy.cut()
    try:
        response = requests.get(stack.base_url + "/readyz", timeout=30)
    finally:
        stack.proxy.restore()
    assert response.status_code == 503
    failing = [c["name"] for c in response.json()["checks"] if not c["ok"]]
    assert failing == ["storage"]


def test_metrics_cover_every_gunicorn_worker_and_the_worker_processes(stack: Stack) -> None:
    chunked_upload(stack.call, b"metrics\n", filename="m.txt", chunk_size=512)
    text = requests.get(stack.base_url + "/metrics", timeout=10).text
    assert 'chute_http_requests_total{endpoint="uploads.complete",method="POST",status="202"}' in text
    port = stack.worker.env["dramatiq_prom_port"]
    worker_metrics = services.wait_until(
        lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).text, 30, what="worker metrics"
    )
    assert "dramatiq_messages_total" in worker_metrics


def test_one_queue_per_stage(stack: Stack) -> None:
    prefix = stack.env["CHUTE_QUEUE_PREFIX"]
    for stage in services.STAGE_QUEUES:
        assert services.queue_depth(f"{prefix}{stage}") >= 0  # declared (passive declare raises if not)
