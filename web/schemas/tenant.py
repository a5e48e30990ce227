"""The calling tenant's own settings."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class RotatedSecret(BaseModel):
    """The new signing secret, shown once; the previous one keeps signing until the overlap ends."""

    webhook_secret: str = Field(description="whsec_…: verify webhooks with it (Standard Webhooks)")
    previous_secret_expires_at: datetime | None = Field(description="until then webhooks carry both signatures")
