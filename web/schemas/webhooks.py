"""The webhook events chute sends, for the OpenAPI document's ``webhooks`` (consumers generate types from it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from models.views import JobView, Timestamp

#: Event type → what it means.
WEBHOOK_EVENTS: dict[str, str] = {
    "job.completed": "A job completed: its result is ready",
    "job.failed": "A job failed: `data.error.code` says why",
    "job.cancelled": "A job was cancelled",
}
#: The Standard Webhooks headers of every delivery.
WEBHOOK_HEADERS: dict[str, str] = {
    "webhook-id": "msg_…: the event's id, the same on every retry (deduplicate on it)",
    "webhook-timestamp": "unix seconds of this attempt",
    "webhook-signature": "space-separated `v1,<base64 HMAC-SHA256>`; two while a rotated secret overlaps",
}


class WebhookEvent(BaseModel):
    """The body of every webhook delivery: the event type, when it happened, and the job."""

    type: Literal["job.completed", "job.failed", "job.cancelled"]
    timestamp: Timestamp = Field(description="when the event was made (the same on every retry)")
    data: JobView
