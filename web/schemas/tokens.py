"""Upload tokens' request and response shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from models.settings import Settings
from web.schemas.common import ApiModel
from web.schemas.uploads import INTEGRAL, MAX_SIZE, Metadata, WebhookUrl

#: A MIME type or a pattern of them (``image/*``).
TypePattern = Annotated[
    str, StringConstraints(min_length=3, max_length=255, pattern=r"^[a-zA-Z0-9.+*-]+/[a-zA-Z0-9.+*-]+$")
]
#: A positive limit.
Limit = Annotated[int, Field(ge=1, le=MAX_SIZE), INTEGRAL]


class TokenScopeModel(ApiModel):
    """What a token allows; a limit left out is the server's own."""

    max_file_size: Limit | None = Field(default=None, description="bytes per file; a larger file is refused (413)")
    max_total_size: Limit | None = Field(default=None, description="bytes over every upload made with the token")
    max_files: Limit | None = Field(default=None, description="uploads the token may open")
    allowed_types: list[TypePattern] | None = Field(
        default=None, max_length=50,
        description="types the file may be (declared, then detected), e.g. image/* or application/pdf",
    )
    webhook_url: WebhookUrl | None = Field(default=None, description="fixed for every upload made with the token")
    metadata: Metadata | None = Field(default=None, description="merged over each upload's own (the token's keys win)")


class TokenCreate(TokenScopeModel):
    """Mint a token for one browser."""

    expires_in: Limit | None = Field(default=None, description="seconds; default and maximum are server settings")


class TokenCreated(ApiModel):
    """The token, shown once: the browser sends it as ``Authorization: Bearer <token>``."""

    token: str
    token_id: str
    expires_at: datetime
    scope: TokenScopeModel


def document_limits(document: dict[str, Any], settings: Settings) -> None:
    """Write this server's longest token lifetime into the document's ``TokenCreate`` schema."""
    properties = document["components"]["schemas"].get("TokenCreate", {}).get("properties", {})
    for branch in properties.get("expires_in", {}).get("anyOf", []):
        if branch.get("type") == "integer":
            branch["maximum"] = settings.max_upload_token_ttl_seconds
