"""Queue depths from RabbitMQ's management API (port 15672): what ``actors.queues`` reads, and
the ops page and ``/metrics`` show, about each stage's queue when ``CHUTE_RABBITMQ_MANAGEMENT_URL``
is set.

The queues are this test's own (a fresh prefix, deleted afterwards) on the machine's broker; a
consumer that never acks stands for a worker holding prefetched messages, the case the management
API exists for (Ready 0, unacked growing). RabbitMQ refreshes the API's counts every few seconds,
so the test waits for them to settle before comparing. Without the management plugin the test
skips on a laptop and fails under CI (``.ci/run`` enables it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from actors.queues import QueueStats, read_queues
from models.settings import Settings, configure
from tests.support import services
from web.collectors import StateCollector

#: The machine's management API, with the broker's default credentials.
MANAGEMENT_URL = os.environ.get("CHUTE_TEST_RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672/")
#: Seconds to wait for the management API's counts to show what was published (it samples queues
#: every 5 s by default).
SETTLE_SECONDS = 30
#: Messages the held consumer takes without acking (a worker's prefetch).
PREFETCH = 2


@pytest.fixture
def management_settings(settings: Settings) -> Iterator[Settings]:
    """Settings on the real broker, a queue prefix of this test's own and the management API."""
    api = urlsplit(MANAGEMENT_URL)
    missing = [what for what, port in (("RabbitMQ", 5672), ("RabbitMQ's management API", api.port or 15672))
               if not services.port_open(api.hostname or "127.0.0.1", port)]  # fmt: skip
    if missing:
        message = f"{' and '.join(missing)} not reachable ({MANAGEMENT_URL})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI enables it: rabbitmq-plugins enable rabbitmq_management")
        pytest.skip(message + "; rabbitmq-plugins enable rabbitmq_management")
    with services.rabbitmq_prefix() as prefix:
        yield configure(
            dataclasses.replace(
                settings,
                broker_url=services.RABBITMQ_URL,
                queue_prefix=prefix,
                rabbitmq_management_url=MANAGEMENT_URL,
            )
        )
    configure(settings)


@pytest.fixture
def filled_queues(management_settings: Settings) -> Iterator[dict[str, QueueStats]]:
    """The stage queues with messages in them, and one consumer holding prefetched messages;
    yields what ``read_queues`` must report for each stage."""
    import pika

    prefix = management_settings.queue_prefix
    published = {"assemble": 3, "upload": PREFETCH + 1, "assemble.XQ": 1, "extract.DQ": 2}
    connection = pika.BlockingConnection(pika.URLParameters(services.RABBITMQ_URL))
    try:
        channel = connection.channel()
        for name in services.queue_names(prefix):
            channel.queue_declare(name, durable=True)
        for queue, count in published.items():
            for n in range(count):
                channel.basic_publish("", prefix + queue, f"message {n}".encode())
        held = connection.channel()
        held.basic_qos(prefetch_count=PREFETCH)
        held.basic_consume(prefix + "upload", lambda *_: None)  # never acks
        connection.process_data_events(time_limit=0)
        expected = {
            stage: QueueStats(stage, prefix + stage, ready=0, unacked=0, consumers=0, dead=0, delayed=0)
            for stage in ("assemble", "upload", "extract", "notify")
        }
        expected["assemble"] = dataclasses.replace(expected["assemble"], ready=3, dead=1)
        expected["upload"] = dataclasses.replace(expected["upload"], ready=1, unacked=PREFETCH, consumers=1)
        expected["extract"] = dataclasses.replace(expected["extract"], delayed=2)
        yield expected
    finally:
        connection.close()


def _settled(settings: Settings, expected: dict[str, QueueStats]) -> dict[str, QueueStats]:
    """``read_queues`` once the management API's counts match ``expected`` (or the last read)."""
    last: dict[str, QueueStats] = {}

    def matches() -> bool:
        last.clear()
        last.update((s.stage, s) for s in read_queues(settings))
        return last == expected

    try:
        services.wait_until(matches, timeout=SETTLE_SECONDS, interval=0.5, what="the management API's counts")
    except TimeoutError:
        pass  # the comparison below shows what differs
    return last


def test_management_api_counts_ready_unacked_consumers_dead_letters_and_retries_and_metrics_show_them(
    management_settings: Settings, filled_queues: dict[str, QueueStats]
) -> None:
    assert _settled(management_settings, filled_queues) == filled_queues

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in StateCollector().collect()
        for sample in metric.samples
    }
    assert samples["chute_queue_up", ()] == 1
    upload = (("stage", "upload"),)
    assert samples["chute_queue_messages", (*upload, ("state", "ready"))] == 1
    assert samples["chute_queue_messages", (*upload, ("state", "unacked"))] == PREFETCH
    assert samples["chute_queue_consumers", upload] == 1
    assert samples["chute_queue_dead_letters", (("stage", "assemble"),)] == 1
    assert samples["chute_queue_delayed", (("stage", "extract"),)] == 2


def test_management_api_refusing_the_credentials_is_an_error_and_metrics_say_the_queues_are_down(
    management_settings: Settings,
) -> None:
    api = urlsplit(MANAGEMENT_URL)
    wrong = api._replace(netloc=f"chute-no-such-user:wrong@{api.hostname}:{api.port or 15672}").geturl()
    settings = configure(dataclasses.replace(management_settings, rabbitmq_management_url=wrong))
    with pytest.raises(ConnectionError, match="answered 401"):
        read_queues(settings)
    up = {s.name: s.value for metric in StateCollector().collect() for s in metric.samples}
    assert up["chute_queue_up"] == 0 and "chute_queue_messages" not in up
