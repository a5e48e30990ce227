"""A tenant's allowed browser origins."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from web.schemas.common import ApiModel

Origin = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class CorsOrigins(ApiModel):
    """Origins like ``https://app.example.com`` (scheme, host, port; no path), or ``*`` for any."""

    origins: list[Origin] = Field(max_length=50)
