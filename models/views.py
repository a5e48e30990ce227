"""The public JSON shape of a job: what ``GET /v1/jobs/{id}`` shows and what a webhook carries.

It lives here, not in web/, because the notify stage sends the very same shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.delivery import WebhookState
from models.job import Job


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


#: Names clients use for the types chute detects.
MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "application/x-pdf": "application/pdf",
                "image/x-png": "image/png"}  # fmt: skip


#: Types whose bytes are plain text, so detecting text/plain does not contradict them.
TEXT_BASED = frozenset({"application/json", "application/xml", "application/javascript", "application/x-ndjson",
                        "application/yaml", "application/x-yaml", "application/toml", "application/csv",
                        "application/sql"})  # fmt: skip


def type_mismatch(declared: str | None, detected: str | None) -> bool:
    """True when the client's declared type says something the bytes contradict."""
    if not declared or not detected or detected == "application/octet-stream":
        return False
    declared = declared.split(";", 1)[0].strip().lower()
    declared = MIME_ALIASES.get(declared, declared)
    if declared == "application/octet-stream":
        return False
    if detected == "text/plain":
        text_based = declared.startswith("text/") or declared in TEXT_BASED or declared.endswith(("+json", "+xml"))
        return not text_based
    return declared != detected


def job_view(job: Job, webhook_state: WebhookState | None) -> dict[str, Any]:
    """The job as clients see it (small: no page text, so webhooks stay under 20 KB)."""
    if job.webhook_url is None:
        webhook: dict[str, Any] | None = None
    elif webhook_state is None:
        webhook = {"status": "waiting", "attempts": 0}
    else:
        webhook = {"status": webhook_state.status, "attempts": webhook_state.attempts}
    return {
        "job_id": job.id,
        "upload_id": job.upload_id,
        "filename": job.filename,
        "content_type": job.content_type,
        "detected_type": job.detected_type,
        "type_mismatch": type_mismatch(job.content_type, job.detected_type),
        "kind": job.kind,
        "size": job.size,
        "sha256": job.sha256,
        "status": job.status,
        "stage": job.stage if job.status == "processing" else None,
        "progress": round(job.progress, 4),
        "attempts": job.attempts,
        "error": job.error,
        "metadata": job.meta or {},
        "webhook": webhook,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
    }
