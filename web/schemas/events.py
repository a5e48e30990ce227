"""Live progress's shapes: the data of every Server-Sent Event, and the resume header."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field, Json, RootModel


class EventError(BaseModel):
    """Why a job failed (only on ``job.failed``)."""

    code: Annotated[str, Field(description="stable, snake_case, as in the job's error")]
    message: str | None


class JobEvent(BaseModel):
    """The ``data`` of each event: the job's moving parts, as ``GET /v1/jobs/{job_id}`` shows them."""

    job_id: str
    status: Literal["queued", "processing", "completed", "failed", "cancelled"]
    stage: Literal["assemble", "upload", "extract", "notify"] | None = Field(description="while processing")
    progress: Annotated[float, Field(ge=0, le=1, description="0..1 over the whole pipeline; never goes back")]
    error: EventError | None
    updated_at: datetime


class ReadyEvent(BaseModel):
    """The ``data`` of ``ready``, the first event of ``GET /v1/events``: its id is a point to resume from."""

    resume_from: int


#: The events of a job: ``status``, ``stage``, ``progress``, then the terminal one (named as the webhooks are).
JobEventName = Literal["status", "stage", "progress", "job.completed", "job.failed", "job.cancelled"]
#: An event's id: the change's time in microseconds, a point to resume from with Last-Event-ID.
EventId = Annotated[str, Field(pattern=r"^[0-9]{1,19}$")]


class JobEventFrame(BaseModel):
    """One event of a job as an SSE client parses it: its name, its id, and a JobEvent as JSON data.

    The document describes a stream by its events (each one of these); ``web.events.frame`` writes them.
    """

    event: JobEventName
    id: EventId
    data: Json[JobEvent]


class ReadyFrame(BaseModel):
    """The ``ready`` event opening ``GET /v1/events``: a ReadyEvent as JSON data."""

    event: Literal["ready"]
    id: EventId
    data: Json[ReadyEvent]


class TenantStreamFrame(RootModel[ReadyFrame | JobEventFrame]):
    """An event of ``GET /v1/events``: the opening ``ready``, then the jobs' events."""


class EventStreamHeaders(BaseModel):
    """What a reconnecting client sends (a browser's EventSource does it by itself); other headers are ignored."""

    last_event_id: Annotated[
        str | None,
        Field(
            validation_alias=AliasChoices("Last-Event-ID", "Last-Event-Id"),
            max_length=64,
            description="the id of the last event received: the stream resumes after it",
        ),
    ] = None

    @property
    def cursor(self) -> int | None:
        """The resume point; an id that is not one of chute's is ignored (the stream starts afresh)."""
        raw = (self.last_event_id or "").strip()
        return int(raw) if raw.isdigit() and len(raw) < 20 else None
