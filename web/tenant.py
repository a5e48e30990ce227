"""The calling tenant's own settings: rotating its webhook signing secret."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, g
from flask.typing import ResponseReturnValue

from models.db import session_scope
from models.settings import current_settings
from models.tenant import rotate_secret
from models.views import iso
from web.auth import require_tenant

bp = Blueprint("tenant", __name__, url_prefix="/v1/webhook-secret")
bp.before_request(require_tenant)


@bp.post("/rotate")
def rotate() -> ResponseReturnValue:
    """Issue a new whsec_ secret; until the overlap ends, webhooks carry both signatures."""
    overlap = timedelta(seconds=current_settings().webhook_secret_overlap_seconds)
    with session_scope() as session:
        tenant = rotate_secret(session, g.tenant_name, overlap)
        return {
            "webhook_secret": tenant.webhook_secret,
            "previous_secret_expires_at": iso(tenant.previous_secret_expires_at),
        }, 201
