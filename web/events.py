"""Live progress as Server-Sent Events: ``GET /v1/jobs/{job_id}/events`` and ``GET /v1/events``.

A stream sends the job's state as it moves: ``status`` (first, and when the status changes),
``stage``, ``progress``, then the terminal event (``job.completed``, ``job.failed`` or
``job.cancelled``, named as the webhooks are); the per-job stream ends there. Every event's
``data`` is ``{job_id, status, stage, progress, error, updated_at}`` and its ``id`` is the
change's time in microseconds, so a client that reconnects with ``Last-Event-ID`` gets what it
missed: the job's current state if it changed, or for ``/v1/events`` every job of the tenant
changed since then (states, not a log: a job that moved twice while you were away is sent
once, as it is now). ``/v1/events`` starts with a ``ready`` event whose id is a resume point.

A comment line every ``sse_heartbeat_seconds`` keeps proxies from closing an idle stream and
finds clients that went away; a stream ends after ``sse_max_stream_seconds`` (the client
reconnects with Last-Event-ID) so long-lived streams spread over processes again.
"""

from __future__ import annotations

import queue
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

from flask import Blueprint, Response

from models import job as jobs
from models.db import read_scope, utcnow
from models.job_events import JobState, cursor_of, moment_of
from models.settings import Settings
from models.settings import current_settings as settings
from web.auth import credential, require_tenant, tenant_id, token_allowed
from web.contract import Reply, operation
from web.event_hub import Hub, Resync, Subscription, hub
from web.schemas.events import (
    EventError,
    EventStreamHeaders,
    JobEvent,
    JobEventFrame,
    JobEventName,
    ReadyEvent,
    TenantStreamFrame,
)

bp = Blueprint("events", __name__, url_prefix="/v1")
bp.before_request(require_tenant)
# An upload token follows the jobs it made (web.auth checks a job id in the path is one of them;
# the tenant stream shows it only its own).
token_allowed("events.job_events", "events.tenant_events")

#: How long a browser's EventSource waits before reconnecting, in milliseconds (the ``retry:`` field).
RETRY_MS = 2000
#: A resume reads changes from this long before Last-Event-ID again: ``updated_at`` comes from each
#: writer's clock, so a change can commit after a later-stamped one was sent.
RESUME_OVERLAP = timedelta(seconds=5)
#: Most job states one catch-up sends; a client away longer than that should list the jobs again.
CATCH_UP_LIMIT = 1000
#: Jobs a tenant stream remembers having sent, to drop repeats (least recently changed forgotten).
REMEMBERED = 10_000
#: The terminal event of each ending status.
TERMINAL_EVENTS: dict[str, JobEventName] = {
    "completed": "job.completed", "failed": "job.failed", "cancelled": "job.cancelled"
}  # fmt: skip
#: Response headers of every stream: nothing may store or buffer it (``X-Accel-Buffering`` is nginx's).
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def frame(event: JobEventName | Literal["ready"], data: JobEvent | ReadyEvent, event_id: int) -> str:
    """One event in the text/event-stream format: a JobEventFrame or ReadyFrame, as the document says."""
    return f"id: {event_id}\nevent: {event}\ndata: {data.model_dump_json()}\n\n"


def job_event(state: JobState) -> JobEvent:
    error = None if state.error_code is None else EventError(code=state.error_code, message=state.error_message)
    return JobEvent(job_id=state.job_id, status=state.status, stage=state.visible[1],  # type: ignore[arg-type]
                    progress=round(state.progress, 4), error=error, updated_at=state.updated_at)  # fmt: skip


def event_name(previous: tuple[Any, ...] | None, state: JobState) -> JobEventName:
    """The event a change is: the terminal one, else the most telling of status, stage, progress."""
    if state.terminal:
        return TERMINAL_EVENTS[state.status]
    if previous is None or previous[0] != state.status:
        return "status"
    if previous[1] != state.stage:
        return "stage"
    return "progress"


class Stream:
    """The events of one subscription, as text/event-stream chunks; releases it when closed."""

    def __init__(self, events: Hub, subscription: Subscription, config: Settings):
        self.hub, self.subscription, self.config = events, subscription, config
        self.sent: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self.finished = False

    def __iter__(self) -> Iterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            yield from self.opening()
            deadline = time.monotonic() + self.config.sse_max_stream_seconds
            while not self.finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                try:
                    item = self.subscription.events.get(timeout=min(self.config.sse_heartbeat_seconds, left))
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                for state in self.catch_up() if isinstance(item, Resync) else [item]:
                    yield from self.render(state)
        finally:
            self.hub.unsubscribe(self.subscription)

    def render(self, state: JobState) -> Iterator[str]:
        """The state's event, unless the client has seen it (or the stream is over)."""
        previous = self.sent.get(state.job_id)
        if self.finished or previous == state.visible:
            return
        self.sent[state.job_id] = state.visible
        self.sent.move_to_end(state.job_id)
        if len(self.sent) > REMEMBERED:
            self.sent.popitem(last=False)
        yield frame(event_name(previous, state), job_event(state), self.event_id(state))
        self.finished = self.ends_with(state)

    def event_id(self, state: JobState) -> int:
        return state.cursor

    def ends_with(self, state: JobState) -> bool:
        return False

    def opening(self) -> Iterator[str]:
        raise NotImplementedError

    def catch_up(self) -> list[JobState]:
        raise NotImplementedError


class JobStream(Stream):
    """One job: its state now (unless the client saw it), each change, the terminal event, the end."""

    def __init__(self, events: Hub, subscription: Subscription, config: Settings, first: JobState, resumed: bool):
        super().__init__(events, subscription, config)
        self.first, self.resumed = first, resumed

    def opening(self) -> Iterator[str]:
        if self.resumed:  # the client saw this very state before it reconnected
            self.sent[self.first.job_id] = self.first.visible
            return iter(())
        return self.render(self.first)

    def ends_with(self, state: JobState) -> bool:
        return state.terminal

    def catch_up(self) -> list[JobState]:
        with read_scope() as session:
            return [JobState.of(jobs.get_job(session, self.subscription.tenant_id, self.first.job_id, view_only=True))]


class TenantStream(Stream):
    """Every job of the tenant: a ``ready`` event (or what changed since Last-Event-ID), then changes."""

    def __init__(self, events: Hub, subscription: Subscription, config: Settings, resume_from: int | None):
        super().__init__(events, subscription, config)
        self.resume_from = resume_from
        self.cursor = resume_from or cursor_of(utcnow())

    def opening(self) -> Iterator[str]:
        if self.resume_from is None:
            yield frame("ready", ReadyEvent(resume_from=self.cursor), self.cursor)
            return
        for state in self.catch_up():
            yield from self.render(state)

    def event_id(self, state: JobState) -> int:
        # Ids only grow, so the one a client remembers is a safe point to resume from.
        self.cursor = max(self.cursor, state.cursor)
        return self.cursor

    def catch_up(self) -> list[JobState]:
        since = moment_of(self.cursor) - RESUME_OVERLAP
        with read_scope() as session:
            return jobs.changed_since(session, [self.subscription.tenant_id], since, CATCH_UP_LIMIT,
                                      self.subscription.creator)  # fmt: skip


def _respond(stream: Stream) -> Response:
    return Response(stream, mimetype="text/event-stream", headers=STREAM_HEADERS)


#: What the stream answers carry, for the document.
STREAM_REPLY_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no: proxies must pass events on at once"}
#: Past the bounds on open streams: per tenant 429, per process 503, both with Retry-After.
STREAM_ERRORS = {429: ["too_many_streams"], 503: ["too_many_streams"]}


@bp.get("/jobs/<job_id:job_id>/events")
@operation(
    "streamJobEvents",
    tags=["events"],
    summary="Follow one job live (Server-Sent Events)",
    description="Events `status` (first, and on each status change), `stage`, `progress`, then the terminal "
    "`job.completed`, `job.failed` or `job.cancelled`, after which the stream ends. Every event's data is a "
    "JobEvent and its id a resume point: reconnect with `Last-Event-ID` to get the job's state if it moved. "
    "A comment line every few seconds is a heartbeat.",
    headers=EventStreamHeaders,
    responses={
        200: Reply(JobEventFrame, "a text/event-stream: each event a JobEventFrame", media_type="text/event-stream",
                   headers=STREAM_REPLY_HEADERS),
        204: Reply(None, "the job ended and Last-Event-ID is its terminal event: nothing more will come"),
    },  # fmt: skip
    errors={404: ["job_not_found"], **STREAM_ERRORS},
)
def job_events(job_id: str, headers: EventStreamHeaders) -> Response:
    """The job's live progress, ending with its terminal event; 204 when the client saw that already."""
    config = settings()
    events = hub(config)
    subscription = events.subscribe(tenant_id(), job_id, credential().creator)  # before reading: nothing falls between
    try:
        with read_scope() as session:
            first = JobState.of(jobs.get_job(session, tenant_id(), job_id, view_only=True))
    except BaseException:
        events.unsubscribe(subscription)
        raise
    resumed = headers.cursor == first.cursor
    if resumed and first.terminal:
        events.unsubscribe(subscription)
        return Response(status=204)  # an EventSource stops reconnecting on 204
    return _respond(JobStream(events, subscription, config, first, resumed))


@bp.get("/events")
@operation(
    "streamEvents",
    tags=["events"],
    summary="Follow every job live (Server-Sent Events)",
    description="The same events as a job's stream, for every job the credential may see, without end. "
    "It opens with `ready` (a ReadyEvent whose id is a resume point); reconnecting with `Last-Event-ID` "
    "sends each job changed since then, as it is now, before the live events.",
    headers=EventStreamHeaders,
    responses={200: Reply(TenantStreamFrame, "a text/event-stream: a ReadyFrame, then JobEventFrames",
                          media_type="text/event-stream", headers=STREAM_REPLY_HEADERS)},  # fmt: skip
    errors=STREAM_ERRORS,
)
def tenant_events(headers: EventStreamHeaders) -> Response:
    """Live progress of every job the credential may see."""
    config = settings()
    events = hub(config)
    subscription = events.subscribe(tenant_id(), creator=credential().creator)
    return _respond(TenantStream(events, subscription, config, headers.cursor))
