"""``POST /v1/upload-tokens``: a tenant's backend mints a short-lived token for one browser.

The token is signed, not stored (models/tokens.py); the backend fixes what it allows: sizes,
number of files, types, and optionally the webhook_url and metadata of every upload made
with it. Only an API key may mint one (an upload token gets 403).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime

from flask import Blueprint
from flask.typing import ResponseReturnValue

from actors.url_guard import REFUSED
from models.errors import Invalid
from models.ids import new_id
from models.settings import current_settings
from models.tokens import TokenScope, UploadToken, sign_token
from web.auth import require_tenant, tenant_id
from web.contract import operation
from web.errors import error_response
from web.schemas.tokens import TokenCreate, TokenCreated, TokenScopeModel
from web.uploads import check_webhook_url

bp = Blueprint("tokens", __name__, url_prefix="/v1/upload-tokens")
bp.before_request(require_tenant)

@bp.post("")
@operation(
    "createUploadToken", tags=["tokens"], summary="Mint a browser upload token",
    description="Called by the tenant's backend with its API key. The token is signed, short-lived (`expires_in` "
    "at most the server's `max_upload_token_ttl_seconds`, stated in this document) and scoped to "
    "uploading: a browser sends it as its Bearer credential to open and send uploads (chunk API and tus) and to "
    "read the jobs it made, nothing else.",
    body=TokenCreate, responses={201: TokenCreated},
    errors={403: ["token_scope"], 422: [REFUSED], 503: ["secret_key_missing"]},
)
def create(body: TokenCreate) -> ResponseReturnValue | tuple[TokenCreated, int]:
    """Sign a token with the scope the backend chose."""
    settings = current_settings()
    if not settings.secret_key:
        return error_response(503, "secret_key_missing", "set CHUTE_SECRET_KEY to mint upload tokens")
    expires_in = body.expires_in or settings.upload_token_ttl_seconds
    if expires_in > settings.max_upload_token_ttl_seconds:
        raise Invalid(f"expires_in must be at most {settings.max_upload_token_ttl_seconds} seconds",
                      code="invalid_field", details={"field": "expires_in"})  # fmt: skip
    scope = TokenScope(
        max_file_size=body.max_file_size,
        max_total_size=body.max_total_size,
        max_files=body.max_files,
        allowed_types=tuple(t.lower() for t in body.allowed_types) if body.allowed_types else None,
        webhook_url=check_webhook_url(body.webhook_url),
        metadata=body.metadata,
    )
    token = UploadToken(new_id("tok"), tenant_id(), time.time() + expires_in, scope)
    shown = TokenScopeModel.model_validate({k: v for k, v in asdict(scope).items() if v is not None})
    created = TokenCreated(token=sign_token(settings.secret_key, token), token_id=token.id,
                           expires_at=datetime.fromtimestamp(token.expires_at, UTC), scope=shown)  # fmt: skip
    return created, 201
