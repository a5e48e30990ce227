"""``POST /v1/upload-tokens``: a tenant's backend mints a short-lived token for one browser.

The token is signed, not stored (models/tokens.py); the backend fixes what it allows: sizes,
number of files, types, and optionally the webhook_url and metadata of every upload made
with it. Only an API key may mint one (an upload token gets 403).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from models.errors import Invalid
from models.ids import new_id
from models.settings import current_settings
from models.tokens import TokenScope, UploadToken, sign_token
from models.views import iso
from web import schemas
from web.auth import require_tenant, tenant_id
from web.errors import error_response
from web.uploads import check_webhook_url

bp = Blueprint("tokens", __name__, url_prefix="/v1/upload-tokens")
bp.before_request(require_tenant)

#: Most allowed types one token may list.
MAX_TYPES = 50


def _positive(body: dict[str, Any], name: str) -> int | None:
    value = schemas.field(body, name, int)
    if value is not None and value < 1:
        raise Invalid(f"'{name}' must be 1 or more", code="invalid_field", details={"field": name})
    return value


def _types(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) > MAX_TYPES
            or not all(isinstance(v, str) and "/" in v and len(v) <= 255 for v in value)):  # fmt: skip
        raise Invalid("allowed_types must be a list of MIME types or patterns like image/*", code="invalid_field",
                      details={"field": "allowed_types"})  # fmt: skip
    return tuple(v.strip().lower() for v in value) or None


@bp.post("")
def create() -> ResponseReturnValue:
    """Mint a token: ``{expires_in?, max_file_size?, max_total_size?, max_files?, allowed_types?,
    webhook_url?, metadata?}`` → 201 ``{token, token_id, expires_at, scope}``."""
    settings = current_settings()
    if not settings.secret_key:
        return error_response(503, "secret_key_missing", "set CHUTE_SECRET_KEY to mint upload tokens")
    body = schemas.json_body()
    expires_in = _positive(body, "expires_in") or settings.upload_token_ttl_seconds
    if expires_in > settings.max_upload_token_ttl_seconds:
        raise Invalid(f"expires_in must be at most {settings.max_upload_token_ttl_seconds} seconds",
                      code="invalid_field", details={"field": "expires_in"})  # fmt: skip
    scope = TokenScope(
        max_file_size=_positive(body, "max_file_size"),
        max_total_size=_positive(body, "max_total_size"),
        max_files=_positive(body, "max_files"),
        allowed_types=_types(body.get("allowed_types")),
        webhook_url=check_webhook_url(body.get("webhook_url")),
        metadata=schemas.metadata(body.get("metadata")),
    )
    token = UploadToken(new_id("tok"), tenant_id(), time.time() + expires_in, scope)
    expires_at = datetime.fromtimestamp(token.expires_at, UTC)
    view = {k: v for k, v in scope.__dict__.items() if v is not None}
    if scope.allowed_types:
        view["allowed_types"] = list(scope.allowed_types)
    return {
        "token": sign_token(settings.secret_key, token),
        "token_id": token.id,
        "expires_at": iso(expires_at),
        "scope": view,
    }, 201
