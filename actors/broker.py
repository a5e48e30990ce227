"""The broker: the only module that knows RabbitMQ, the StubBroker and the middleware stack.

``stub://`` gives Dramatiq's in-process StubBroker (``chute dev`` runs a worker in the same
process); ``amqp://`` gives a RabbitmqBroker with publisher confirms on, since Dramatiq's
default (no confirms) lets a publish vanish under broker memory pressure.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from actors.stage_metrics import StageMetrics
from actors.sweeper import Sweeper
from actors.tracking import JobTracking
from actors.transient import retry_when
from models.settings import Settings, current_settings


def build_middleware(settings: Settings) -> list[Middleware]:
    """Dramatiq's own middleware, tuned, plus ours.

    Dramatiq runs ``after_*`` hooks in reverse list order: JobTracking sits before Retries so
    that its ``after_process_message`` runs after Retries has decided whether the message failed.
    """
    middleware: list[Middleware] = [
        AgeLimit(),
        StageMetrics(),
        TimeLimit(time_limit=settings.stage_time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        JobTracking(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
            retry_when=retry_when(settings.max_retries),
        ),
        CurrentMessage(),
        Sweeper(interval=settings.sweep_interval_seconds),
    ]
    return middleware


def build_broker(settings: Settings) -> dramatiq.Broker:
    middleware = build_middleware(settings)
    if settings.is_stub_broker:
        return StubBroker(middleware=middleware)
    return RabbitmqBroker(url=broker_urls(settings), confirm_delivery=True, middleware=middleware)


def broker_urls(settings: Settings) -> str:
    """The broker URL(s), each with a blocked-connection timeout unless it names one.

    During a memory or disk alarm RabbitMQ stops reading from publishing connections; without
    this timeout a confirmed publish waits until the alarm clears, holding an API thread.
    """
    seconds = settings.broker_blocked_timeout_seconds
    urls = []
    for url in settings.broker_url.split(";"):
        if "blocked_connection_timeout=" not in url:
            url += ("&" if "?" in url else "?") + f"blocked_connection_timeout={seconds:g}"
        urls.append(url)
    return ";".join(urls)


settings = current_settings()
broker = build_broker(settings)
dramatiq.set_broker(broker)


#: The routing key of readiness probes: no queue has it, so the broker drops them at once.
PROBE_ROUTING_KEY = "chute.readyz.probe"


def ping_broker(target: dramatiq.Broker) -> None:
    """Raise unless the broker answers and takes publishes (readiness); the StubBroker always does.

    A confirmed probe publish: a broker under a memory or disk alarm accepts connections but
    blocks publishers, and a service that cannot publish is not ready.
    """
    if isinstance(target, RabbitmqBroker):
        import pika

        params = pika.URLParameters(broker_urls(settings).split(";")[0])
        params.socket_timeout = 2
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(exchange="", routing_key=PROBE_ROUTING_KEY, body=b"")
        finally:
            if connection.is_open:
                connection.close()


def queue_counts(target: dramatiq.Broker, names: list[str]) -> dict[str, tuple[int, int | None]]:
    """``name → (ready messages, consumers)`` of each existing queue, by AMQP passive declares.

    A passive declare counts only *ready* messages: what workers have prefetched (unacked)
    is not in it, which is why ``actors.queues`` prefers the management API when it is set.
    On the StubBroker: the in-memory queue sizes and dead letters; consumers unknown (None).
    """
    if isinstance(target, StubBroker):
        counts: dict[str, tuple[int, int | None]] = {}
        for name in names:
            if name.endswith(".XQ"):
                counts[name] = (len(target.dead_letters_by_queue.get(name[: -len(".XQ")], [])), None)
            elif name in target.queues:
                counts[name] = (target.queues[name].qsize(), None)
        return counts
    import pika
    import pika.exceptions

    params = pika.URLParameters(settings.broker_url.split(";")[0])
    params.socket_timeout = 2
    params.connection_attempts = 1
    connection = pika.BlockingConnection(params)
    try:
        out: dict[str, tuple[int, int | None]] = {}
        channel = connection.channel()
        for name in names:
            try:
                method = channel.queue_declare(name, passive=True).method
            except pika.exceptions.ChannelClosedByBroker:  # 404: not declared yet
                channel = connection.channel()
                continue
            out[name] = (int(method.message_count), int(method.consumer_count))
        return out
    finally:
        connection.close()
