"""How deep each stage's queue is, as RabbitMQ sees it: ready, unacked, consumers, dead letters.

Two sources, chosen by ``CHUTE_RABBITMQ_MANAGEMENT_URL``:

* the management API (one HTTP GET for every queue): ready *and* unacked counts. Under a
  backlog RabbitMQ hands each worker up to its prefetch, so Ready stays near 0 while unacked
  grows: only ready + unacked says how much work is waiting;
* without it, AMQP passive declares (no plugin, no extra credentials): ready counts and
  consumers only.

The age of the oldest waiting message is not read here: RabbitMQ can only show the head of
the *ready* list, which under prefetch is empty. ``models.ops.waiting_by_stage`` reads it from
the database, which knows when each job's stage became due.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import urllib3

from actors.broker import broker, queue_counts
from models.job import STAGES
from models.settings import Settings

#: Seconds a management API call may take (a scrape must not hang on a busy broker).
MANAGEMENT_TIMEOUT = 3.0


@dataclass(frozen=True)
class QueueStats:
    """One stage's queues. ``unacked`` is None when the source cannot tell (passive declares)."""

    stage: str
    queue: str
    ready: int
    unacked: int | None
    #: Consumers on the stage queue (one per worker process); None on the in-process StubBroker.
    consumers: int | None
    #: Messages in the stage's ``.XQ``: what chute could not handle (bugs, long outages).
    dead: int
    #: Messages in the stage's ``.DQ``: retries waiting out their backoff (ready only, see ``unacked``).
    delayed: int


def read_queues(settings: Settings) -> list[QueueStats]:
    """The stats of every stage queue; raises what the broker or its management API raised."""
    names = {stage: settings.queue(stage) for stage in STAGES}
    if settings.rabbitmq_management_url and not settings.is_stub_broker:
        counts = _from_management(settings)
    else:
        wanted = [name + suffix for name in names.values() for suffix in ("", ".DQ", ".XQ")]
        counts = {name: (ready, None, consumers) for name, (ready, consumers) in queue_counts(broker, wanted).items()}
    out = []
    for stage, name in names.items():
        ready, unacked, consumers = counts.get(name, (0, 0, 0))
        dq_ready, dq_unacked, _ = counts.get(name + ".DQ", (0, 0, 0))
        out.append(
            QueueStats(
                stage=stage,
                queue=name,
                ready=ready,
                unacked=unacked,
                consumers=consumers,
                dead=counts.get(name + ".XQ", (0, 0, 0))[0],
                delayed=dq_ready + (dq_unacked or 0),
            )
        )
    return out


def _from_management(settings: Settings) -> dict[str, tuple[int, int | None, int | None]]:
    """``name → (ready, unacked, consumers)`` from ``GET /api/queues/{vhost}``."""
    api = urlsplit(settings.rabbitmq_management_url)
    vhost = unquote(urlsplit(settings.broker_url.split(";")[0]).path.lstrip("/")) or "/"
    base = f"{api.scheme}://{api.hostname}{':' + str(api.port) if api.port else ''}{api.path.rstrip('/')}"
    headers = urllib3.make_headers(basic_auth=f"{unquote(api.username or '')}:{unquote(api.password or '')}")
    response = urllib3.request(
        "GET",
        f"{base}/api/queues/{quote(vhost, safe='')}?columns=name,messages_ready,messages_unacknowledged,consumers",
        headers=headers,
        timeout=MANAGEMENT_TIMEOUT,
        retries=False,
    )
    if response.status != 200:
        raise ConnectionError(f"RabbitMQ management API answered {response.status}")
    return {
        q["name"]: (
            int(q.get("messages_ready", 0)),
            int(q.get("messages_unacknowledged", 0)),
            int(q.get("consumers", 0)),
        )
        for q in json.loads(response.data)
        if q["name"].startswith(settings.queue_prefix)
    }
