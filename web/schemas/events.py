"""Live progress's shapes: the data of every Server-Sent Event, and the resume header."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field


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
