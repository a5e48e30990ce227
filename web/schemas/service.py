"""Service endpoints' shapes: liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Check(BaseModel):
    """One dependency's answer: ``ms`` when it answered, ``error`` when not."""

    name: str
    ok: bool
    ms: float | None = None
    error: str | None = None


class Readiness(BaseModel):
    """Whether every dependency answered; ``checks`` says which did not."""

    status: Literal["ready", "unavailable"]
    checks: list[Check]
