"""The process's hub of live job events: one source of changes, fanned out to bounded streams.

Each web process has one hub. Its source is a single thread: on PostgreSQL a dedicated
connection that LISTENs on ``models.job_events.CHANNEL`` (every committed job change arrives
as a notification), on SQLite a short poll of ``jobs.updated_at``. Streams subscribe by tenant
(and optionally one job) and read their own queue; nothing per stream touches the database
while it waits, so a stream costs one thread blocked on a queue and a socket.

The hub bounds the streams it holds: at most ``sse_max_streams`` in the process (then 503 with
Retry-After: another process or a later retry can take it) and ``sse_max_streams_per_tenant``
for one tenant (then 429), so streams never take every thread the API has.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import make_url

from models import job as jobs
from models.db import read_scope, utcnow
from models.errors import TransientError
from models.job_events import CHANNEL, JobState
from models.settings import Settings

log = logging.getLogger(__name__)

#: Changes the poller reads per round; past it, the next round goes on from the last one read.
POLL_BATCH = 1000
#: How far back the poller looks again, because ``updated_at`` comes from the writer's clock and
#: a change can commit after a later-stamped one was read.
POLL_OVERLAP = timedelta(seconds=5)
#: Events a slow stream may have waiting; past it the stream is told to catch up from the database.
QUEUE_SIZE = 1000
#: The listener connection's application_name, so operators (and tests) can find it in pg_stat_activity.
LISTENER_NAME = "chute-events"
#: Seconds between attempts to re-open the LISTEN connection after it broke.
RECONNECT_DELAY = 1.0


class TooManyStreams(TransientError):
    """This process holds as many streams as it may (503 with Retry-After)."""

    code = "too_many_streams"


class TenantStreamLimit(TransientError):
    """The tenant holds as many streams in this process as it may (429 with Retry-After)."""

    code = "too_many_streams"


class Resync:
    """Told to a stream when events may have been missed: it re-reads the database."""


RESYNC = Resync()


@dataclass(eq=False)
class Subscription:
    """One stream's interest: a tenant's jobs, or one job of it; ``events`` is its mailbox."""

    tenant_id: str
    job_id: str | None = None
    #: An upload token's id: it sees only the jobs it made (None: the whole tenant).
    creator: str | None = None
    events: queue.Queue[JobState | Resync] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))

    def offer(self, item: JobState | Resync) -> None:
        try:
            self.events.put_nowait(item)
        except queue.Full:
            # A stream that cannot keep up loses its backlog, not the process: it re-reads the
            # database (states, not a log, so nothing is lost) once it reads again.
            with self.events.mutex:
                self.events.queue.clear()
            self.events.put_nowait(RESYNC)


class Hub:
    """Subscriptions of one process, and the thread that feeds them.

    Parameters:
        settings: ``sse_max_streams``, ``sse_max_streams_per_tenant``, ``sse_poll_seconds`` and
            the database URL (PostgreSQL: LISTEN; anything else: poll).
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.lock = threading.Lock()
        self.by_tenant: dict[str, set[Subscription]] = {}
        self.count = 0
        self.source: threading.Thread | None = None
        self.stopping = threading.Event()

    # --- streams ----------------------------------------------------------------------

    def subscribe(self, tenant_id: str, job_id: str | None = None, creator: str | None = None) -> Subscription:
        """A new subscription (release it with :meth:`unsubscribe`).

        Raises:
            TooManyStreams: the process is at ``sse_max_streams``.
            TenantStreamLimit: the tenant is at ``sse_max_streams_per_tenant``.
        """
        with self.lock:
            if self.count >= self.settings.sse_max_streams:
                raise TooManyStreams(f"this server holds {self.count} event streams, its most; retry shortly")
            held = self.by_tenant.setdefault(tenant_id, set())
            if len(held) >= self.settings.sse_max_streams_per_tenant:
                raise TenantStreamLimit(f"at most {self.settings.sse_max_streams_per_tenant} event streams at once")
            subscription = Subscription(tenant_id, job_id, creator)
            held.add(subscription)
            self.count += 1
            self._start_source()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self.lock:
            held = self.by_tenant.get(subscription.tenant_id)
            if held is not None and subscription in held:
                held.discard(subscription)
                self.count -= 1
                if not held:
                    del self.by_tenant[subscription.tenant_id]

    def streams(self) -> int:
        with self.lock:
            return self.count

    # --- the source's side ------------------------------------------------------------

    def publish(self, states: Iterable[JobState]) -> None:
        """Hand each state to the subscriptions that want it."""
        for state in states:
            with self.lock:
                targets = list(self.by_tenant.get(state.tenant_id, ()))
            for subscription in targets:
                if subscription.creator is not None and subscription.creator != state.credential_id:
                    continue
                if subscription.job_id is None or subscription.job_id == state.job_id:
                    subscription.offer(state)

    def resync(self) -> None:
        """Tell every stream that events may have been missed (the LISTEN connection broke)."""
        with self.lock:
            targets = [s for held in self.by_tenant.values() for s in held]
        for subscription in targets:
            subscription.offer(RESYNC)

    def tenants(self) -> list[str]:
        with self.lock:
            return list(self.by_tenant)

    def _start_source(self) -> None:
        """Start the feeding thread on the first subscription (never at import: gunicorn forks)."""
        if self.source is not None and self.source.is_alive():
            return
        url = self.settings.database_url
        target = self._listen if make_url(url).get_backend_name() == "postgresql" else self._poll
        self.source = threading.Thread(target=target, name="chute-events", daemon=True)
        self.source.start()

    def _listen(self) -> None:
        """LISTEN on a connection of its own (never the pool's), re-opened whenever it breaks."""
        import psycopg

        conninfo = make_url(self.settings.database_url).set(drivername="postgresql")
        dsn = conninfo.render_as_string(hide_password=False)
        first = True
        while not self.stopping.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name=LISTENER_NAME) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if not first:
                        self.resync()  # what committed while we were away
                    first = False
                    while not self.stopping.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._receive(note.payload)
            except Exception:
                log.warning("job event listener lost its connection; reconnecting", exc_info=True)
                first = False
                self.stopping.wait(RECONNECT_DELAY)

    def _receive(self, payload: str) -> None:
        try:
            state = JobState.from_payload(payload)
        except (ValueError, TypeError):
            log.warning("ignored a malformed job event %r", payload[:200])
            return
        self.publish([state])

    def _poll(self) -> None:
        """Read changed jobs of the subscribed tenants every ``sse_poll_seconds``."""
        since = utcnow() - POLL_OVERLAP
        seen: dict[str, tuple[object, ...]] = {}
        while not self.stopping.wait(self.settings.sse_poll_seconds):
            tenants = self.tenants()
            if not tenants:
                continue
            started = utcnow()
            try:
                with read_scope() as session:
                    states = jobs.changed_since(session, tenants, since, POLL_BATCH)
            except Exception:
                log.warning("job event poll failed", exc_info=True)
                continue
            fresh = [s for s in states if seen.get(s.job_id) != s.visible]
            for state in fresh:
                seen[state.job_id] = state.visible
            self.publish(fresh)
            # A full batch goes on from its last row; otherwise look back over the overlap again.
            since = states[-1].updated_at if len(states) == POLL_BATCH else started - POLL_OVERLAP
            if len(seen) > 10 * POLL_BATCH:
                seen.clear()  # bounded: at worst a few repeated events, which streams drop as well

    def stop(self) -> None:
        self.stopping.set()


_hub: Hub | None = None
_hub_lock = threading.Lock()


def hub(settings: Settings) -> Hub:
    """The process's hub for ``settings`` (a new one when the settings changed: tests)."""
    global _hub
    with _hub_lock:
        if _hub is None or _hub.settings != settings:
            if _hub is not None:
                _hub.stop()
            _hub = Hub(settings)
        return _hub
