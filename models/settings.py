"""Settings: the only reader of ``os.environ``.

Every setting is a ``CHUTE_*`` environment variable with an embedded default, so a bare
checkout runs on SQLite, the in-process stub broker and the filesystem store under ``var/``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

#: The environment prefix of every setting.
PREFIX = "CHUTE_"

MiB = 1024 * 1024


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Every tunable of chute; see the README's settings table for what each one does."""

    # Where things live.
    database_url: str = "sqlite:///var/chute.db"
    broker_url: str = "stub://"
    storage_url: str = "file://var/objects"
    staging_dir: str = "var/staging"
    #: Prefix of the RabbitMQ queue names (one queue per stage: ``chute.assemble`` ...).
    queue_prefix: str = "chute."

    # Uploads.
    default_chunk_size: int = 8 * MiB
    min_chunk_size: int = 64 * 1024
    max_chunk_size: int = 64 * MiB
    max_upload_size: int = 5 * 1024 * MiB
    max_files_per_request: int = 20
    upload_ttl_seconds: int = 24 * 3600

    # Pipeline.
    max_retries: int = 8
    min_backoff_ms: int = 1000
    #: Stays well below RabbitMQ's 30 min consumer_timeout (Dramatiq #827).
    max_backoff_ms: int = 5 * 60 * 1000
    #: Crashes of one stage charged to a job (its run had a process to itself, which died),
    #: counted in the database because a SIGKILLed worker's message comes back without its
    #: retry counter moving (Dramatiq #213): then the job fails ``too_many_attempts``.
    max_stage_crashes: int = 3
    stage_time_limit_ms: int = 10 * 60 * 1000
    #: A queued job whose message was not confirmed published for this long is re-sent.
    requeue_after_seconds: int = 60
    sweep_interval_seconds: int = 60
    #: A job waiting with no run in flight (queued, or between stages) unchanged for this long
    #: may have lost a message the broker had confirmed: the sweeper sends it again. Longer than
    #: the longest retry backoff, since a message waiting out its backoff is not lost.
    resend_after_seconds: int = 15 * 60
    #: A processing job with no progress for this long lost its message: the sweeper re-sends
    #: its current stage. Longer than a stage's time limit plus the longest retry backoff.
    stall_after_seconds: int = 20 * 60
    part_size: int = 8 * MiB

    # Dependencies down: answer 503 soon instead of hanging.
    #: A publish the broker holds back (a memory or disk alarm) gives up after this long.
    broker_blocked_timeout_seconds: float = 2.0
    #: Connecting to the database gives up after this long.
    database_connect_timeout_seconds: int = 5
    #: A statement is cancelled by PostgreSQL after this long, and its connection is cut by
    #: chute if no answer comes a little later (a server that does not answer at all).
    database_statement_timeout_seconds: float = 15.0
    #: How long a request waits for a free database connection.
    database_pool_timeout_seconds: float = 5.0

    # Extraction.
    thumbnail_sizes: tuple[int, ...] = (256, 1024)
    derivative_format: str = "JPEG"
    max_image_pixels: int = 64_000_000
    max_pdf_pages: int = 2000
    max_text_bytes_in_result: int = 256 * 1024
    #: A 6 KB PDF can cost pypdf 10 s of CPU: keep this short so a few hostile files cannot hold every thread.
    extract_time_limit_seconds: int = 30
    extract_memory_limit_mb: int = 1024
    extract_isolation: bool = True
    #: An isolated extraction child is kept warm for this many files, then replaced (1: one per file).
    extract_files_per_child: int = 50
    keep_exif_gps: bool = False
    #: Tesseract languages (``eng+deu`` is ``eng,deu``); each needs its ``tesseract-ocr-LANG`` package.
    ocr_languages: tuple[str, ...] = ("eng",)
    ocr_dpi: int = 300
    #: Tesseract's memory and time grow with pixels: 16 MP is A3 at 250 dpi, A4 at 300 dpi fits.
    ocr_max_pixels: int = 16_000_000
    ocr_max_pages: int = 100
    #: OCR costs about a second a page on one core: 100 pages need this much.
    ocr_time_limit_seconds: int = 180
    tables_max_pages: int = 500
    tables_time_limit_seconds: int = 60
    max_table_bytes_in_result: int = 256 * 1024

    # Webhooks.
    webhook_allowed_hosts: tuple[str, ...] = ()
    webhook_timeout_seconds: float = 15.0
    #: Seconds after the first attempt for each retry (Standard Webhooks' usual schedule).
    webhook_schedule: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    webhook_secret_overlap_seconds: int = 24 * 3600

    # Serving.
    web_workers: int = 2
    web_threads: int = 8
    worker_processes: int = 2
    worker_threads: int = 8
    presign_ttl_seconds: int = 900
    #: How long the API trusts a looked-up API key without asking the database again.
    api_key_cache_seconds: float = 30.0

    # Live progress (Server-Sent Events). Each open stream holds a thread of its own: ``chute web``
    # gives every process this many threads beyond ``web_threads``, so streams never starve the API.
    sse_max_streams: int = 100
    sse_max_streams_per_tenant: int = 20
    #: A comment line this often keeps proxies from closing an idle stream and finds gone clients.
    sse_heartbeat_seconds: float = 15.0
    #: A stream ends after this long and the client reconnects (with Last-Event-ID), which spreads
    #: long-lived streams over the processes again.
    sse_max_stream_seconds: float = 600.0
    #: How often a web process on SQLite (no LISTEN/NOTIFY) looks for changed jobs.
    sse_poll_seconds: float = 0.5
    # The ``chute upload`` client.
    api_url: str = "http://127.0.0.1:8000"
    api_key: str = ""
    #: Where gunicorn's workers share Prometheus samples (emptied when ``chute web`` starts).
    metrics_dir: str = "var/metrics"
    #: The largest body the API reads at all; bigger requests get 413 before any byte is read.
    max_request_size: int = 1024 * MiB

    # Operations.
    #: The S3 endpoint as clients reach it (``https://files.example.com``): presigned URLs are
    #: signed for this host. Empty: the storage URL's own endpoint.
    storage_public_url: str = ""
    #: Addresses (IPs, CIDRs) of the proxies whose ``X-Forwarded-*`` headers are believed.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    #: The ops page's credential (``Authorization: Bearer``), unrelated to tenants' keys. Empty: no ops page.
    admin_token: str = ""
    #: First port a ``chute worker`` tries for its Prometheus exporter; the next free one is used if taken.
    worker_metrics_port: int = 9191
    worker_metrics_host: str = "0.0.0.0"
    #: RabbitMQ's management API (``http://user:pass@rabbitmq:15672/``): ready *and* unacked counts.
    #: Empty: queue depths come from AMQP passive declares (ready only).
    rabbitmq_management_url: str = ""
    # Browsers.
    #: Signs upload tokens and short-lived download URLs (``chute dev`` makes one under ``var/``).
    secret_key: str = ""
    #: Lifetime of an upload token when its minter does not choose, and the longest it may choose.
    upload_token_ttl_seconds: int = 15 * 60
    max_upload_token_ttl_seconds: int = 24 * 3600
    #: Origins every tenant allows (``*``: any), besides each tenant's own list.
    cors_origins: tuple[str, ...] = ()
    #: How long browsers may cache a preflight answer.
    cors_max_age_seconds: int = 600

    # Fairness: rate limits, quotas, webhook isolation, slow clients, keys, retention.
    #: Where the rate limiter keeps its counters, shared by every web process; empty: in-process
    #: memory (``chute dev``, one process).
    redis_url: str = ""
    #: Prefix of every rate-limit key in Redis (tests use one per run).
    rate_limit_prefix: str = "chute"
    #: Per tenant, over all its credentials and routes (``limits`` notation; ``;`` separates several).
    rate_limit_tenant: str = "200/second;6000/minute"
    #: Per credential (an API key or an upload token), for each class of route.
    rate_limit_read: str = "50/second;1500/minute"
    rate_limit_write: str = "20/second;600/minute"
    rate_limit_upload: str = "100/second;6000/minute"
    rate_limit_replay: str = "10/minute"
    #: Per client address, on requests without a credential or with a wrong one.
    rate_limit_anonymous: str = "30/minute"
    #: Per client address, on public routes outside /v1 (not /healthz and /metrics: probes and scrapers).
    rate_limit_public: str = "300/minute"
    #: Per-tenant quotas (a tenant's own values, set with ``chute tenants set``, win).
    quota_open_uploads: int = 1000
    quota_staged_bytes: int = 200 * 1024 * MiB
    quota_jobs_in_flight: int = 500
    #: Days a tenant's jobs, objects and derivatives are kept; 0 keeps them for ever.
    retention_days: float = 0
    #: An expired or cancelled upload's row is deleted this long after it ended.
    expired_upload_grace_seconds: int = 7 * 24 * 3600
    #: ``chute worker`` runs a webhook group of its own (capacity the stages never share).
    webhook_worker_processes: int = 1
    webhook_worker_threads: int = 16
    #: Deliveries in flight at once to one destination (scheme, host and port), across workers.
    webhook_max_in_flight_per_destination: int = 4
    #: Consecutive failures that open an endpoint's circuit breaker.
    webhook_breaker_threshold: int = 5
    #: How long an open breaker waits before a probe; doubled after each failed probe, up to the max.
    webhook_breaker_cooldown_seconds: float = 60.0
    webhook_breaker_max_cooldown_seconds: float = 3600.0
    #: ``secret_key`` (above) also encrypts webhook secrets at rest; when it is empty they are
    #: sealed with a key generated into ``secret_key_file`` (one machine only).
    #: Keys used before the last rotation: still decrypt, never encrypt (``chute keys reencrypt``).
    old_secret_keys: tuple[str, ...] = ()
    secret_key_file: str = "var/secret_key"
    #: How often each web process asks whether a key was revoked (a revoked key stops within this).
    revocation_check_seconds: float = 0.5
    #: ``chute web`` runs a buffering front (slow clients never hold a gunicorn thread).
    web_front: bool = True
    #: The front drops a request whose head is not complete after this, or whose body sends
    #: nothing for this long.
    web_header_timeout_seconds: float = 10.0
    web_body_stall_seconds: float = 30.0
    #: Set by ``chute web`` for its gunicorn: trust the front's peer-address header.
    behind_front: bool = False
    #: False for a worker group whose samples another group's exporter serves (``chute worker``
    #: sets it for its webhook group, which shares the stage group's metrics directory and port).
    worker_metrics_exporter: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``CHUTE_*`` variables, then apply keyword ``overrides``.

        Raises:
            ValueError: a variable that does not parse as its setting's type.
        """
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _parse(f.name, hints[f.name], raw)
        values.update(overrides)
        return cls(**values)

    @property
    def is_stub_broker(self) -> bool:
        return self.broker_url.startswith("stub:")

    def queue(self, stage: str) -> str:
        """The RabbitMQ queue name of one stage."""
        return f"{self.queue_prefix}{stage}"


def _parse(name: str, hint: Any, raw: str) -> Any:
    try:
        if hint is bool:
            if raw.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if raw.strip().lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint == tuple[int, ...]:
            return tuple(int(v) for v in _split(raw))
        if hint == tuple[float, ...]:
            return tuple(float(v) for v in _split(raw))
        if hint == tuple[str, ...]:
            return _split(raw)
        return raw
    except ValueError:
        raise ValueError(f"{PREFIX}{name.upper()}={raw!r} is not a valid {hint}") from None


_current: Settings | None = None


def current_settings() -> Settings:
    """The process's settings: read from the environment once, unless configured."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def configure(settings: Settings) -> Settings:
    """Make ``settings`` the process's settings (entry points and tests)."""
    global _current
    _current = settings
    return settings
