"""Shapes shared by every resource: the error body, and string types bounded like their columns."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    """Base of every request and response model: unknown fields are refused, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    """What went wrong: a stable snake_case ``code`` to branch on, a message for people, and details."""

    code: Annotated[str, Field(description="stable, snake_case; branch on this", examples=["checksum_mismatch"])]
    message: Annotated[str, Field(description="for people; may change")]
    details: Annotated[dict[str, Any], Field(description="machine-readable specifics of this code")]


class ErrorBody(BaseModel):
    """Every 4xx and 5xx chute answers has this body."""

    error: ErrorDetail
