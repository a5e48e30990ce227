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


class Ocr(BaseModel):
    """Whether this host can OCR (Tesseract and the configured languages' data installed).

    Not a dependency: without it jobs still complete, and their results say ``ocr: "unavailable"``.
    """

    available: bool
    version: str | None = None
    languages: list[str] = []
    problem: str | None = None


class Readiness(BaseModel):
    """Every dependency answered, and how fast; ``ocr`` whether OCR can run."""

    status: Literal["ready"]
    checks: list[Check]
    ocr: Ocr | None = None
