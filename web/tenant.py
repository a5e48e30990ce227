"""The calling tenant's own settings: rotating its webhook signing secret."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, g

from models.db import session_scope
from models.settings import current_settings
from models.tenant import rotate_secret
from web.auth import require_tenant
from web.contract import operation
from web.schemas.tenant import RotatedSecret

bp = Blueprint("tenant", __name__, url_prefix="/v1/webhook-secret")
bp.before_request(require_tenant)


@bp.post("/rotate")
@operation(
    "rotateWebhookSecret",
    tags=["tenant"],
    summary="Rotate the webhook signing secret",
    description="Issues a new whsec_ secret, shown once; until the overlap ends, webhooks carry both signatures.",
    responses={201: RotatedSecret},
)
def rotate() -> RotatedSecret:
    """Issue a new whsec_ secret; until the overlap ends, webhooks carry both signatures."""
    overlap = timedelta(seconds=current_settings().webhook_secret_overlap_seconds)
    with session_scope() as session:
        tenant = rotate_secret(session, g.tenant_name, overlap)
        return RotatedSecret(
            webhook_secret=tenant.webhook_secret,
            previous_secret_expires_at=tenant.previous_secret_expires_at,
        )
