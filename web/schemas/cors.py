"""A tenant's allowed browser origins."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from models.cors import ORIGIN, ORIGIN_PATTERN
from web.schemas.common import ApiModel


def _origin(value: str) -> str:
    """The document states models.cors's own pattern, so its refusal (422 invalid_origin) and the schema agree."""
    if not ORIGIN.fullmatch(value):
        raise PydanticCustomError("invalid_origin", "an origin is like https://app.example.com, or *")
    return value


Origin = Annotated[
    str, AfterValidator(_origin), Field(min_length=1, max_length=255, json_schema_extra={"pattern": ORIGIN_PATTERN})
]


class CorsOrigins(ApiModel):
    """Origins like ``https://app.example.com`` (scheme, host, port; no path), or ``*`` for any."""

    origins: list[Origin] = Field(max_length=50)
