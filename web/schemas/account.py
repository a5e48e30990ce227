"""The calling tenant's account: quotas and usage, API keys, webhook endpoints and their breakers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Quota(BaseModel):
    """One quota: its limit and what the tenant uses of it now."""

    limit: int = Field(description="the most the tenant may have at once")
    used: int = Field(description="what it has now")


class FileSizeLimit(BaseModel):
    limit: int = Field(description="the largest file the tenant may upload, in bytes")


class Quotas(BaseModel):
    open_uploads: Quota = Field(description="uploads still receiving chunks")
    staged_bytes: Quota = Field(description="bytes the open uploads declared (reserved on the staging disk)")
    jobs_in_flight: Quota = Field(description="jobs queued or processing")
    max_file_size: FileSizeLimit


class Usage(BaseModel):
    """Where the tenant stands against its quotas (429 ``<quota>_quota_exceeded`` when one is used up)."""

    quotas: Quotas
    retention_days: float | None = Field(description="days ended jobs and their files are kept; null: for ever")


class ApiKeyView(BaseModel):
    """An API key as listings show it: never the key itself."""

    key_id: str
    name: str | None = Field(description="what the key is for")
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    created_at: datetime
    last_used_at: datetime | None = Field(description="to the minute")
    revoked_at: datetime | None


class ApiKeyList(BaseModel):
    keys: list[ApiKeyView]


class WebhookEndpointView(BaseModel):
    """A URL the tenant's webhooks go to, and its circuit breaker."""

    endpoint_id: str
    url: str
    state: Literal["closed", "open", "half_open"] = Field(
        description="closed: deliveries go; open: paused after repeated failures; half_open: one probe is out"
    )
    consecutive_failures: int
    opened_at: datetime | None
    next_attempt_at: datetime | None = Field(description="while paused: when the next probe goes")
    last_error: str | None
    last_failure_at: datetime | None
    last_success_at: datetime | None


class WebhookEndpointList(BaseModel):
    endpoints: list[WebhookEndpointView]
