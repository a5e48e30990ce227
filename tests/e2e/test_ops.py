"""What ops see: readiness of every dependency, Prometheus metrics from web and worker, one
queue per stage on the broker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import requests
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack
from tests.e2e.test_pipeline import wait_for_job, webhook_for
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
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    failing = [c["name"] for c in error["details"]["checks"] if not c["ok"]]
    assert failing == ["storage"]


def test_metrics_cover_every_gunicorn_worker_and_the_worker_processes(stack: Stack) -> None:
    chunked_upload(stack.call, b"metrics\n", filename="m.txt", chunk_size=512)
    text = requests.get(stack.base_url + "/metrics", timeout=10).text
    assert 'chute_http_requests_total{endpoint="uploads.complete",method="POST",status="202"}' in text
    port = stack.worker.env["dramatiq_prom_port"]
    # The worker's directory starts empty: Dramatiq's counters appear once it processed a message.
    services.wait_until(
        lambda: "dramatiq_messages_total" in requests.get(f"http://127.0.0.1:{port}/", timeout=5).text, 30,
        what="Dramatiq's metrics from the worker",
    )


def test_one_queue_per_stage(stack: Stack) -> None:
    prefix = stack.env["CHUTE_QUEUE_PREFIX"]
    for stage in services.STAGE_QUEUES:
        assert services.queue_depth(f"{prefix}{stage}") >= 0  # declared (passive declare raises if not)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(stack: Stack) -> tuple[dict[Any, float], dict[Any, float]]:
    """The web's and the worker's metrics."""
    port = stack.worker.env["dramatiq_prom_port"]
    web = requests.get(stack.base_url + "/metrics", timeout=30).text
    worker = services.wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=10).text, 30,
                                 what="worker metrics")  # fmt: skip
    return samples(web), samples(worker)


def wait_until_idle(stack: Stack) -> None:
    """Jobs of earlier tests on this shared stack that are still running (or whose webhooks are
    still pending) would move the counters during the test; wait until there are none."""
    engine = sqlalchemy.create_engine(stack.env["CHUTE_DATABASE_URL"], poolclass=sqlalchemy.NullPool)
    busy = sqlalchemy.text(
        "SELECT (SELECT count(*) FROM jobs WHERE status NOT IN ('completed', 'failed', 'cancelled'))"
        " + (SELECT count(*) FROM webhook_events WHERE status = 'pending')"
    )
    try:
        def idle() -> bool:
            with engine.connect() as conn:
                return conn.execute(busy).scalar_one() == 0

        services.wait_until(idle, 60, interval=0.2, what="earlier tests' jobs and webhooks to end")
    finally:
        engine.dispose()


def test_after_real_jobs_the_metrics_match_what_ran(stack: Stack) -> None:
    """Two good files (one with a webhook), one with a wrong sha256: the counters moved by exactly that."""
    wait_until_idle(stack)
    web_before, worker_before = scrape(stack)
    prefix = stack.env["CHUTE_QUEUE_PREFIX"]
    dead_before = services.queue_depth(f"{prefix}assemble.XQ")
    good = [b"first good file\n" * 40, b"second good file\n" * 70]
    ids = [chunked_upload(stack.call, good[0], filename="a.txt", chunk_size=256,
                          webhook_url=stack.receiver.url("/metrics"))["job_id"],
           chunked_upload(stack.call, good[1], filename="b.txt", chunk_size=256)["job_id"]]  # fmt: skip
    bad = chunked_upload(stack.call, b"z" * 300, filename="bad.bin", chunk_size=256, sha256="0" * 64)["job_id"]
    jobs = [wait_for_job(stack, job_id) for job_id in [*ids, bad]]
    assert [j["status"] for j in jobs] == ["completed", "completed", "failed"]
    webhook_for(stack, ids[0])

    def settled() -> tuple[dict[Any, float], dict[Any, float]] | None:
        web, worker = scrape(stack)
        done = worker.get(("chute_webhook_attempts_total", (("outcome", "delivered"),)), 0) - worker_before.get(
            ("chute_webhook_attempts_total", (("outcome", "delivered"),)), 0
        )
        return (web, worker) if done >= 1 else None

    web, worker = services.wait_until(settled, 30, interval=0.5, what="the webhook attempt in the metrics")

    def delta(source: str, name: str, **labels: str) -> float:
        after, before = (web, web_before) if source == "web" else (worker, worker_before)
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # web: bytes in, uploads opened and completed
    assert delta("web", "chute_ingested_bytes_total") == sum(map(len, good)) + 300
    assert delta("web", "chute_uploads_total", event="opened") == 3
    assert delta("web", "chute_uploads_total", event="completed") == 3
    # worker: jobs by outcome and code, per-stage runs and queue waits, the webhook
    assert delta("worker", "chute_jobs_total", outcome="completed", code="") == 2
    assert delta("worker", "chute_jobs_total", outcome="failed", code="checksum_mismatch") == 1
    assert delta("worker", "chute_stage_seconds_count", stage="assemble", outcome="ok") == 2
    assert delta("worker", "chute_stage_seconds_count", stage="assemble", outcome="error") == 1
    assert delta("worker", "chute_stage_seconds_count", stage="upload", outcome="ok") == 2
    assert delta("worker", "chute_stage_seconds_count", stage="extract", outcome="ok") == 0  # text: passed over
    assert delta("worker", "chute_stage_queue_wait_seconds_count", stage="assemble") == 3
    assert delta("worker", "chute_stage_queue_wait_seconds_count", stage="upload") == 2
    assert delta("worker", "chute_webhook_attempts_total", outcome="delivered") == 1
    assert delta("worker", "chute_webhook_attempt_seconds_count", outcome="delivered") == 1
    assert worker[("chute_stage_seconds_sum", (("outcome", "ok"), ("stage", "upload")))] > 0
    # Dramatiq's own per-actor metrics are still exported by the worker
    assert any(name == "dramatiq_messages_total" for name, _ in worker)
    # scrape-time gauges: the queues as RabbitMQ sees them, and nothing left waiting
    for stage in services.STAGE_QUEUES:
        assert web[("chute_queue_messages", (("stage", stage), ("state", "ready")))] == 0
        assert web[("chute_queue_consumers", (("stage", stage),))] >= 1, "the worker consumes every stage"
        assert web[("chute_stage_waiting_jobs", (("stage", stage),))] == 0
    assert web[("chute_queue_up", ())] == 1 and web[("chute_database_up", ())] == 1
    # dead letters mean bugs: the client's wrong checksum left nothing in .XQ
    assert web[("chute_queue_dead_letters", (("stage", "assemble"),))] == dead_before
    assert services.queue_depth(f"{prefix}assemble.XQ") == dead_before


def test_workers_on_one_host_get_their_own_port_and_metrics_directory(stack: Stack, tmp_path: Path) -> None:
    """Two ``chute worker`` started with the same first port: the second takes the next free one,
    each exports its own group's samples from its own directory."""
    first = services.free_port()
    started = []
    with services.rabbitmq_prefix() as prefix:
        env = {k: v for k, v in stack.env.items() if not k.startswith("dramatiq_prom")}
        env.update(CHUTE_QUEUE_PREFIX=prefix, CHUTE_METRICS_DIR=str(tmp_path / "metrics"),
                   CHUTE_WORKER_METRICS_PORT=str(first), CHUTE_WORKER_METRICS_HOST="127.0.0.1")  # fmt: skip
        try:
            for n in range(2):
                log_dir = tmp_path / f"w{n}"
                log_dir.mkdir()
                started.append(services.start_worker(env, log_dir, processes=1, threads=1, pin_metrics_port=False))
            ports = []
            for worker in started:
                line = services.wait_until(
                    lambda w=worker: re.search(rb"metrics on http://127.0.0.1:(\d+)/", w.log_path.read_bytes()),
                    30, what="the worker's metrics port",
                )  # fmt: skip
                ports.append(int(line.group(1)))
            assert ports[0] == first and ports[1] > first, ports
            assert sorted(p.name for p in (tmp_path / "metrics").iterdir() if p.is_dir()) == [
                f"worker-{ports[0]}", f"worker-{ports[1]}"
            ]
            for port in ports:
                text = services.wait_until(lambda p=port: _get(f"http://127.0.0.1:{p}/"), 30, what="worker metrics")
                # only this group's queues, never the e2e stack worker's (another prefix, another directory)
                assert stack.env["CHUTE_QUEUE_PREFIX"] not in text
        finally:
            for worker in started:
                worker.stop()


def _get(url: str) -> str | None:
    try:
        return requests.get(url, timeout=5).text
    except requests.RequestException:
        return None
