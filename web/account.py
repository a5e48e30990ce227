"""The calling tenant's account: where it stands against its quotas, its API keys, its webhook
signing secret, and the circuit breakers of its webhook endpoints."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, g

from models import endpoint, quota
from models.db import read_scope, session_scope
from models.errors import NotFound
from models.settings import current_settings
from models.tenant import ApiKey, Tenant, list_keys, revoke_key, rotate_secret
from web.auth import forget_cached_credentials, require_tenant, tenant_id
from web.contract import operation
from web.schemas.account import (
    ApiKeyList,
    ApiKeyView,
    FileSizeLimit,
    Quota,
    Quotas,
    Usage,
    WebhookEndpointList,
    WebhookEndpointView,
)
from web.schemas.tenant import RotatedSecret

bp = Blueprint("account", __name__, url_prefix="/v1")
bp.before_request(require_tenant)


@bp.get("/usage")
@operation("getUsage", tags=["account"], summary="Quotas and what the tenant uses of them", responses={200: Usage})
def usage() -> Usage:
    """Each quota with its limit and what the tenant uses of it now, and its retention."""
    with read_scope() as session:
        tenant = session.get(Tenant, tenant_id())
        assert tenant is not None
        limits = quota.limits_of(tenant, current_settings())
        used = quota.usage_of(session, tenant_id())
    return Usage(
        quotas=Quotas(
            open_uploads=Quota(limit=limits.open_uploads, used=used.open_uploads),
            staged_bytes=Quota(limit=limits.staged_bytes, used=used.staged_bytes),
            jobs_in_flight=Quota(limit=limits.jobs_in_flight, used=used.jobs_in_flight),
            max_file_size=FileSizeLimit(limit=limits.max_file_size),
        ),
        retention_days=limits.retention_days or None,
    )


def key_view(key: ApiKey) -> ApiKeyView:
    return ApiKeyView(key_id=key.id, name=key.name, prefix=key.prefix, created_at=key.created_at,
                      last_used_at=key.last_used_at, revoked_at=key.revoked_at)  # fmt: skip


@bp.get("/keys")
@operation("listApiKeys", tags=["account"], summary="The tenant's API keys: names, created, last used",
           responses={200: ApiKeyList})  # fmt: skip
def keys() -> ApiKeyList:
    with read_scope() as session:
        return ApiKeyList(keys=[key_view(k) for k in list_keys(session, tenant_id())])


@bp.delete("/keys/<key_id>")
@operation(
    "revokeApiKey",
    tags=["account"],
    summary="Revoke an API key",
    description="Every web process stops accepting it within a second. Revoking a revoked key changes nothing.",
    responses={200: ApiKeyView},
    errors={404: ["key_not_found"]},
)
def revoke(key_id: str) -> ApiKeyView:
    with session_scope() as session:
        view = key_view(revoke_key(session, tenant_id(), key_id))
    forget_cached_credentials()
    return view


@bp.post("/webhook-secret/rotate")
@operation(
    "rotateWebhookSecret",
    tags=["tenant"],
    summary="Rotate the webhook signing secret",
    description="Issues a new whsec_ secret, shown once; until the overlap ends, webhooks carry both signatures.",
    responses={201: RotatedSecret},
)
def rotate_webhook_secret() -> RotatedSecret:
    overlap = timedelta(seconds=current_settings().webhook_secret_overlap_seconds)
    with session_scope() as session:
        tenant = rotate_secret(session, g.tenant_name, overlap)
        return RotatedSecret(
            webhook_secret=tenant.webhook_secret,
            previous_secret_expires_at=tenant.previous_secret_expires_at,
        )


def endpoint_view(row: endpoint.WebhookEndpoint) -> WebhookEndpointView:
    return WebhookEndpointView(
        endpoint_id=row.id,
        url=row.url,
        state=row.state,  # type: ignore[arg-type]
        consecutive_failures=row.consecutive_failures,
        opened_at=row.opened_at,
        next_attempt_at=row.retry_at if row.state != endpoint.CLOSED else None,
        last_error=row.last_error,
        last_failure_at=row.last_failure_at,
        last_success_at=row.last_success_at,
    )


@bp.get("/webhook-endpoints")
@operation(
    "listWebhookEndpoints",
    tags=["webhooks"],
    summary="Where the tenant's webhooks go, and each endpoint's circuit breaker",
    description="An endpoint that keeps failing is paused (open) and probed again later; its events wait.",
    responses={200: WebhookEndpointList},
)
def webhook_endpoints() -> WebhookEndpointList:
    with read_scope() as session:
        return WebhookEndpointList(endpoints=[endpoint_view(e) for e in endpoint.list_endpoints(session, tenant_id())])


@bp.post("/webhook-endpoints/<endpoint_id>/reset")
@operation(
    "resetWebhookEndpoint",
    tags=["webhooks"],
    summary="Close an endpoint's circuit breaker now",
    description="For a consumer that is fixed: its waiting events go at their next turn (or replay them).",
    responses={200: WebhookEndpointView},
    errors={404: ["endpoint_not_found"]},
)
def reset_endpoint(endpoint_id: str) -> WebhookEndpointView:
    with session_scope() as session:
        row = endpoint.get_endpoint(session, tenant_id(), endpoint_id)
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}", code="endpoint_not_found")
        endpoint.reset(session, row)
        return endpoint_view(row)
