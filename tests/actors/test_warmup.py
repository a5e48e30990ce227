"""The extraction warm-up runs only in worker processes that extract."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from actors import warmup
from actors.warmup import ExtractionWarmup
from models.settings import Settings, configure


@pytest.fixture
def isolating(settings: Settings) -> Iterator[Settings]:
    """The settings with the extraction sandbox on, as in production (the suite turns it off)."""
    yield configure(dataclasses.replace(settings, extract_isolation=True))
    configure(settings)


def warmed(monkeypatch: pytest.MonkeyPatch, consumed: set[str] | None) -> bool:
    """Boot the middleware in a worker consuming ``consumed`` (None: every queue); did it warm the pool?"""
    started = threading.Event()

    def warm(_limits: Any) -> None:
        started.set()

    monkeypatch.setattr(warmup.POOL, "warm", warm)
    ExtractionWarmup().after_worker_boot(None, SimpleNamespace(consumer_whitelist=consumed))  # type: ignore[arg-type]
    return started.wait(2.0)


def test_a_worker_of_every_queue_warms_the_pool(monkeypatch: pytest.MonkeyPatch, isolating: Settings) -> None:
    assert warmed(monkeypatch, None)


def test_a_worker_of_the_stages_warms_the_pool(monkeypatch: pytest.MonkeyPatch, isolating: Settings) -> None:
    assert warmed(monkeypatch, {isolating.queue(stage) for stage in ("assemble", "upload", "extract", "notify")})


def test_the_webhook_group_does_not(monkeypatch: pytest.MonkeyPatch, isolating: Settings) -> None:
    assert not warmed(monkeypatch, {isolating.queue("webhooks")})


def test_nothing_warms_with_the_sandbox_off(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    assert not warmed(monkeypatch, None)
