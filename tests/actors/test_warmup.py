"""The extraction warm-up runs only in worker processes that extract, before they consume."""

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
    ExtractionWarmup().before_worker_boot(None, SimpleNamespace(consumer_whitelist=consumed))  # type: ignore[arg-type]
    return started.is_set()  # before_worker_boot returned: the warm-up has run


def test_a_worker_of_every_queue_warms_the_pool(monkeypatch: pytest.MonkeyPatch, isolating: Settings) -> None:
    assert warmed(monkeypatch, None)


def test_a_worker_of_the_stages_warms_the_pool(monkeypatch: pytest.MonkeyPatch, isolating: Settings) -> None:
    assert warmed(monkeypatch, {isolating.queue(stage) for stage in ("assemble", "upload", "extract", "notify")})


def test_the_webhook_group_does_not(monkeypatch: pytest.MonkeyPatch, isolating: Settings) -> None:
    assert not warmed(monkeypatch, {isolating.queue("webhooks")})


def test_nothing_warms_with_the_sandbox_off(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    assert not warmed(monkeypatch, None)


def test_the_boot_waits_for_the_sandbox_but_not_for_ever(
    monkeypatch: pytest.MonkeyPatch, isolating: Settings
) -> None:
    """Dramatiq consumes once ``before_worker_boot`` returns: a slow start is waited for, a hung
    one only up to WARM_WAIT_SECONDS."""
    release = threading.Event()
    monkeypatch.setattr(warmup.POOL, "warm", lambda _limits: release.wait(5))
    monkeypatch.setattr(warmup, "WARM_WAIT_SECONDS", 0.2)
    waited = threading.Event()

    def boot() -> None:
        ExtractionWarmup().before_worker_boot(None, SimpleNamespace(consumer_whitelist=None))  # type: ignore[arg-type]
        waited.set()

    threading.Thread(target=boot, daemon=True).start()
    assert not waited.wait(0.1)  # still warming
    assert waited.wait(2.0)  # given up after WARM_WAIT_SECONDS
    release.set()
