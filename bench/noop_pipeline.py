"""The pipeline benchmark's ceiling: a bare Dramatiq pipeline of four no-op actors.

Same broker as chute (RabbitMQ with publisher confirms), Dramatiq's default middleware, one
queue per stage. The last actor tells the benchmark the job is through with one UDP datagram
to ``BENCH_NOOP_REPORT`` (``host:port``), the no-op stand-in for chute's webhook.

Loaded both by the benchmark (to publish) and by ``python -m dramatiq bench.noop_pipeline``.
"""

from __future__ import annotations

import os
import socket

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

#: The four stages, named like chute's.
STAGES = ("assemble", "upload", "extract", "notify")

_prefix = os.environ.get("BENCH_NOOP_PREFIX", "bench_noop.")
_host, _, _port = os.environ.get("BENCH_NOOP_REPORT", "127.0.0.1:9").rpartition(":")
_report_to = (_host, int(_port))
_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

broker = RabbitmqBroker(
    url=os.environ.get("BENCH_NOOP_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/"), confirm_delivery=True
)
dramatiq.set_broker(broker)


def _stage(name: str, last: bool = False) -> dramatiq.Actor[[str], None]:
    def run(job_id: str) -> None:
        if last:
            _socket.sendto(job_id.encode(), _report_to)

    run.__name__ = f"noop_{name}"
    return dramatiq.actor(actor_name=f"noop_{name}", queue_name=f"{_prefix}{name}")(run)


assemble = _stage("assemble")
upload = _stage("upload")
extract = _stage("extract")
notify = _stage("notify", last=True)


def job_pipeline(job_id: str) -> dramatiq.pipeline:
    """The same shape as chute's ``actors.pipeline.job_pipeline``."""
    return dramatiq.pipeline(
        stage.message_with_options(args=(job_id,), pipe_ignore=True) for stage in (assemble, upload, extract, notify)
    )
