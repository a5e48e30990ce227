"""Upload tokens' request and response shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

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
