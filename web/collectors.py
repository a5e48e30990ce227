"""Gauges read at scrape time: queue depth per stage (RabbitMQ) and waiting work (the database).

They describe the whole system, not this process, so they are computed when ``/metrics`` is
scraped rather than kept in the multiprocess files (where every process would report its own
stale copy). Several web replicas report the same values: aggregate them with ``max``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.queues import read_queues
from models import ops
from models.db import read_scope
from models.settings import current_settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class StateCollector(Collector):
    """``chute_queue_*`` from the broker and ``chute_stage_waiting_*``/``chute_uploads_open`` from the
    database; ``chute_queue_up``/``chute_database_up`` say whether each source answered."""

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._database()

    def _queues(self) -> Iterator[Metric]:
        up, stats = _read("chute_queue_up", "the broker", lambda: read_queues(current_settings()))
        yield up
        if stats is None:
            return
        messages = GaugeMetricFamily(
            "chute_queue_messages", "Messages on a stage's queue: ready, and unacked (prefetched or running)",
            labels=["stage", "state"],
        )  # fmt: skip
        consumers = GaugeMetricFamily("chute_queue_consumers", "Worker processes consuming a stage", labels=["stage"])
        dead = GaugeMetricFamily("chute_queue_dead_letters", "Messages in a stage's .XQ", labels=["stage"])
        delayed = GaugeMetricFamily("chute_queue_delayed", "Retries in a stage's .DQ", labels=["stage"])
        for s in stats:
            messages.add_metric([s.stage, "ready"], s.ready)
            if s.unacked is not None:
                messages.add_metric([s.stage, "unacked"], s.unacked)
            if s.consumers is not None:
                consumers.add_metric([s.stage], s.consumers)
            dead.add_metric([s.stage], s.dead)
            delayed.add_metric([s.stage], s.delayed)
        yield from (messages, consumers, dead, delayed)

    def _database(self) -> Iterator[Metric]:
        def read() -> tuple[list[ops.Waiting], int]:
            with read_scope() as session:
                return ops.waiting_by_stage(session), ops.open_uploads(session)

        up, found = _read("chute_database_up", "the database", read)
        yield up
        if found is None:
            return
        waiting, open_uploads = found
        count = GaugeMetricFamily(
            "chute_stage_waiting_jobs", "Jobs due for a stage that no worker has started", labels=["stage"]
        )
        age = GaugeMetricFamily(
            "chute_stage_oldest_waiting_seconds", "How long the oldest job due for a stage has waited", labels=["stage"]
        )
        for w in waiting:
            count.add_metric([w.stage], w.count)
            age.add_metric([w.stage], w.oldest_seconds)
        uploads = GaugeMetricFamily("chute_uploads_open", "Uploads still receiving chunks")
        uploads.add_metric([], open_uploads)
        yield from (count, age, uploads)


def _read(name: str, source: str, read: Callable[[], T]) -> tuple[GaugeMetricFamily, T | None]:
    """Call ``read``; the ``name`` gauge says whether ``source`` answered (a failed read is logged, not raised)."""
    up = GaugeMetricFamily(name, f"1 when {source} answered this scrape")
    try:
        value: T | None = read()
    except Exception as e:
        log.warning("%s unavailable for /metrics: %s", source, e)
        value = None
    up.add_metric([], 0 if value is None else 1)
    return up, value
