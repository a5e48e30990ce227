"""A tenant's allowed browser origins."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from web.schemas.common import ApiModel

#: An origin as a browser sends it (``scheme://host[:port]``, no path, a trailing / dropped), or
#: ``*``: exactly what models.cors accepts, so the document's pattern and the refusal (422 invalid_origin) agree.
ORIGIN = r"^(\*|[hH][tT][tT][pP][sS]?://[A-Za-z0-9.\-\[\]:]+/?)$"
_ORIGIN = re.compile(ORIGIN)


def _origin(value: str) -> str:
    if not _ORIGIN.fullmatch(value):
        raise PydanticCustomError("invalid_origin", "an origin is like https://app.example.com, or *")
    return value


Origin = Annotated[
    str, AfterValidator(_origin), Field(min_length=1, max_length=255, json_schema_extra={"pattern": ORIGIN})
]


class CorsOrigins(ApiModel):
    """Origins like ``https://app.example.com`` (scheme, host, port; no path), or ``*`` for any."""

    origins: list[Origin] = Field(max_length=50)
