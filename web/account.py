"""The calling tenant's account: where it stands against its quotas, its API keys, and the
circuit breakers of its webhook endpoints."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from models import endpoint, quota
from models.db import read_scope, session_scope
from models.errors import NotFound
from models.settings import current_settings
from models.tenant import ApiKey, Tenant, list_keys, revoke_key
from models.views import iso
from web.auth import forget_cached_credentials, require_tenant, tenant_id

bp = Blueprint("account", __name__, url_prefix="/v1")
bp.before_request(require_tenant)


@bp.get("/usage")
def usage() -> ResponseReturnValue:
    """Each quota with its limit and what the tenant uses of it now, and its retention."""
    with read_scope() as session:
        tenant = session.get(Tenant, tenant_id())
        assert tenant is not None
        limits = quota.limits_of(tenant, current_settings())
        used = quota.usage_of(session, tenant_id())
    return {
        "quotas": {
            "open_uploads": {"limit": limits.open_uploads, "used": used.open_uploads},
            "staged_bytes": {"limit": limits.staged_bytes, "used": used.staged_bytes},
            "jobs_in_flight": {"limit": limits.jobs_in_flight, "used": used.jobs_in_flight},
            "max_file_size": {"limit": limits.max_file_size},
        },
        "retention_days": limits.retention_days or None,
    }


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }


@bp.get("/keys")
def keys() -> ResponseReturnValue:
    """The tenant's API keys (never the keys themselves): names, prefixes, created, last used."""
    with read_scope() as session:
        return {"keys": [key_view(k) for k in list_keys(session, tenant_id())]}


@bp.delete("/keys/<key_id>")
def revoke(key_id: str) -> ResponseReturnValue:
    """Revoke one of the tenant's keys; every web process stops accepting it within a second."""
    with session_scope() as session:
        view = key_view(revoke_key(session, tenant_id(), key_id))
    forget_cached_credentials()
    return view


def endpoint_view(row: endpoint.WebhookEndpoint) -> dict[str, Any]:
    return {
        "endpoint_id": row.id,
        "url": row.url,
        "state": row.state,
        "consecutive_failures": row.consecutive_failures,
        "opened_at": iso(row.opened_at),
        "next_attempt_at": iso(row.retry_at) if row.state != endpoint.CLOSED else None,
        "last_error": row.last_error,
        "last_failure_at": iso(row.last_failure_at),
        "last_success_at": iso(row.last_success_at),
    }


@bp.get("/webhook-endpoints")
def webhook_endpoints() -> ResponseReturnValue:
    """Every URL the tenant's webhooks went to, with its circuit breaker's state."""
    with read_scope() as session:
        return {"endpoints": [endpoint_view(e) for e in endpoint.list_endpoints(session, tenant_id())]}


@bp.post("/webhook-endpoints/<endpoint_id>/reset")
def reset_endpoint(endpoint_id: str) -> ResponseReturnValue:
    """Close an endpoint's breaker now (the consumer is fixed): waiting events go at their next turn."""
    with session_scope() as session:
        row = endpoint.get_endpoint(session, tenant_id(), endpoint_id)
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}", code="endpoint_not_found")
        endpoint.reset(session, row)
        return endpoint_view(row)
