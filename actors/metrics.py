"""chute's own Prometheus metrics: what happened to jobs, stages, webhooks, uploads and the sweeper.

Counters and histograms live here, in the processes where the events happen (web for bytes and
uploads, workers for stages and webhooks). Under ``chute web`` and ``chute worker`` every process
writes them to its group's multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, set before
Python starts), so one scrape of the group sums its processes. Gauges that describe the state
of the system (queue depth, oldest waiting job, open uploads) are read at scrape time by
``web.collectors`` instead, so they are never stale or double-counted.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

#: Histogram buckets (seconds) for stage run times and queue waits: from a 10 ms metadata
#: stage to a 10-minute upload of a large file.
SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))

JOBS = Counter("chute_jobs", "Jobs that ended, by outcome (completed, failed, cancelled) and code", ["outcome", "code"])
STAGE_SECONDS = Histogram(
    "chute_stage_seconds", "Time one stage message ran, by stage and outcome (ok, error)", ["stage", "outcome"],
    buckets=SECONDS_BUCKETS,
)  # fmt: skip
QUEUE_WAIT_SECONDS = Histogram(
    "chute_stage_queue_wait_seconds", "Time a stage message waited in its queue before a worker started it",
    ["stage"], buckets=SECONDS_BUCKETS,
)  # fmt: skip
WEBHOOK_ATTEMPTS = Counter(
    "chute_webhook_attempts", "Webhook attempts by outcome (delivered, rejected, unreachable, gone)", ["outcome"]
)
WEBHOOK_SECONDS = Histogram(
    "chute_webhook_attempt_seconds", "Duration of one webhook delivery attempt", ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, float("inf")),
)  # fmt: skip
INGESTED_BYTES = Counter("chute_ingested_bytes", "Bytes received from clients and kept on the staging disk")
UPLOADS = Counter("chute_uploads", "Uploads by event (opened, completed, expired, cancelled)", ["event"])
SWEEPER_ACTIONS = Counter("chute_sweeper_actions", "What the sweeper did, by action", ["action"])


def job_ended(outcome: str, code: str | None = None) -> None:
    """Count a job that reached ``completed``, ``failed`` or ``cancelled``."""
    JOBS.labels(outcome, code or "").inc()


def webhook_attempt(*, ok: bool, gone: bool, status_code: int | None, seconds: float) -> None:
    """Count one delivery attempt and its duration."""
    if ok:
        outcome = "delivered"
    elif gone:
        outcome = "gone"
    elif status_code is None:
        outcome = "unreachable"  # timeout, refused, reset: no HTTP answer at all
    else:
        outcome = "rejected"  # an HTTP answer that is not 2xx
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_SECONDS.labels(outcome).observe(seconds)
