"""Bearer API keys: every /v1 request names its tenant by its key."""

from __future__ import annotations

from flask import g, request

from models.db import session_scope
from models.errors import Unauthorized
from models.tenant import authenticate


def require_tenant() -> None:
    """A ``before_request`` hook: sets ``g.tenant_id`` or raises 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send 'Authorization: Bearer <api key>'", code="missing_api_key")
    with session_scope() as session:
        tenant = authenticate(session, key.strip())
        g.tenant_id = tenant.id
        g.tenant_name = tenant.name


def tenant_id() -> str:
    return str(g.tenant_id)
