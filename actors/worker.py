"""The module ``chute worker`` hands to Dramatiq's CLI: the actors plus worker-only middleware.

Dramatiq's Prometheus middleware only works in processes the Dramatiq CLI booted (its
metrics are created at process boot), so the web process, which merely sends messages,
does not get it.
"""

from __future__ import annotations

from typing import Any

from dramatiq.middleware.prometheus import Prometheus

import actors.pipeline  # noqa: F401  (declares every stage actor)
from actors.broker import broker
from actors.warmup import ExtractionWarmup
from models.settings import current_settings


class SamplesOnly(Prometheus):
    """Dramatiq's Prometheus middleware without its exposition server: the group writes its
    samples into a directory whose exporter another group of the same ``chute worker`` runs."""

    @property
    def forks(self) -> list[Any]:
        return []


broker.add_middleware(Prometheus() if current_settings().worker_metrics_exporter else SamplesOnly())
broker.add_middleware(ExtractionWarmup())
