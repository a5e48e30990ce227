"""Shapes shared by every resource: the error body, and string types bounded like their columns.

Every string a client sends is bounded to what its column holds and refuses the characters that
cannot be stored (NUL: PostgreSQL text cannot hold it) or would be unsafe to show (control
characters, bidi overrides that make ``evil\u202etxt.exe`` read as ``evilexe.txt``). The refusal
is written once as a regular expression, so the validator and the OpenAPI ``pattern`` agree and a
fuzzer's valid strings are the ones chute accepts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

#: Characters no client string may hold: C0/C1 controls and DEL, line and
#: paragraph separators, and the bidi marks, embeddings, overrides and isolates (Trojan Source).
UNSAFE_CHARS = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
#: A safe string (possibly empty): none of :data:`UNSAFE_CHARS`.
SAFE_TEXT = f"^[^{UNSAFE_CHARS}]*$"
_SAFE_TEXT = re.compile(SAFE_TEXT)


def _safe(value: str) -> str:
    if not _SAFE_TEXT.fullmatch(value):
        raise ValueError("control characters, NUL and bidi overrides are not accepted")
    return value


#: A string with none of :data:`UNSAFE_CHARS`; bound it with ``Field(max_length=…)`` to its column.
SafeStr = Annotated[str, AfterValidator(_safe), Field(json_schema_extra={"pattern": SAFE_TEXT})]

#: A file's name as people see it: 1–255 safe characters (its column), no path separators, and
#: something other than spaces and dots (so never "", "." or "..").
FILENAME = rf"^[^{UNSAFE_CHARS}/\\]*[^{UNSAFE_CHARS}/\\\s.][^{UNSAFE_CHARS}/\\]*$"
_FILENAME = re.compile(FILENAME)


def filename(value: str) -> str:
    """``value`` if it is a safe file name.

    Raises:
        PydanticCustomError: ``invalid_filename``: empty, over 255 characters, a path, or unsafe characters.
    """
    if len(value) > 255 or not _FILENAME.fullmatch(value):
        raise PydanticCustomError(
            "invalid_filename", "a filename is 1 to 255 characters without control characters, bidi overrides or '/'"
        )
    return value


Filename = Annotated[
    str,
    AfterValidator(filename),
    Field(min_length=1, max_length=255, json_schema_extra={"pattern": FILENAME}, examples=["report.pdf"]),
]


class ApiModel(BaseModel):
    """Base of every request and response model: unknown fields are refused, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class QueryModel(BaseModel):
    """Base of query-string models: unknown parameters are ignored (cache busters, tracking tags)."""

    model_config = ConfigDict(extra="ignore")


class HeaderModel(BaseModel):
    """Base of request-header models: a field's alias is the header's name; other headers are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ErrorDetail(BaseModel):
    """What went wrong: a stable snake_case ``code`` to branch on, a message for people, and details."""

    code: Annotated[str, Field(description="stable, snake_case; branch on this", examples=["checksum_mismatch"])]
    message: Annotated[str, Field(description="for people; may change")]
    details: Annotated[dict[str, Any], Field(description="machine-readable specifics of this code")]


class ErrorBody(BaseModel):
    """Every 4xx and 5xx chute answers has this body."""

    error: ErrorDetail
