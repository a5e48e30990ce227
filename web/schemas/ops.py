"""The ops API's shapes: the overview the ops page polls, and what retry and cancel answer."""

from __future__ import annotations

from typing import Any, Literal

from web.schemas.common import ApiModel


class OpsStage(ApiModel):
    """One pipeline stage: its queue as RabbitMQ sees it (None when the broker did not answer;
    ``unacked`` None without the management API), the jobs due for it in the database, and its
    throughput and due-to-done p50/p99 over the latency window."""

    stage: str
    queue: str
    ready: int | None
    unacked: int | None
    consumers: int | None
    dead_letters: int | None
    delayed: int | None
    waiting: int
    oldest_waiting_seconds: float
    done: int
    per_minute: float
    p50_seconds: float | None
    p99_seconds: float | None


class OpsJob(ApiModel):
    """A job as ops see it, any tenant's; ``retryable`` when it failed after its file was stored."""

    job_id: str
    tenant_id: str
    filename: str
    size: int
    status: str
    stage: str | None
    attempts: int
    error: dict[str, Any] | None
    created_at: str | None
    updated_at: str | None
    retryable: bool


class OpsEndpoint(ApiModel):
    """A webhook receiver (scheme://host) over the health window."""

    endpoint: str
    attempts: int
    delivered: int
    failing_streak: int
    pending: int
    p50_ms: float | None
    last_attempt_at: str | None
    last_result: str


class OpsOverview(ApiModel):
    """Everything the ops page shows, in one document."""

    generated_at: str | None
    latency_window_seconds: float
    health_window_seconds: float
    broker_error: str | None
    stages: list[OpsStage]
    uploads_open: int
    failures_by_code: dict[str, int]
    failed_jobs: list[OpsJob]
    in_flight_jobs: list[OpsJob]
    webhook_endpoints: list[OpsEndpoint]


class OpsRetried(ApiModel):
    """A failed job sent back to the stage it failed in."""

    job_id: str
    status: Literal["processing"]
    stage: str


class OpsCancelled(ApiModel):
    job_id: str
    status: Literal["cancelled"]
