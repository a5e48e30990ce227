"""The module ``chute worker`` hands to Dramatiq's CLI: the actors plus worker-only middleware.

Dramatiq's Prometheus middleware only works in processes the Dramatiq CLI booted (its
metrics are created at process boot), so the web process, which merely sends messages,
does not get it.
"""

from __future__ import annotations

from dramatiq.middleware.prometheus import Prometheus

import actors.pipeline  # noqa: F401  (declares every stage actor)
from actors.broker import broker

broker.add_middleware(Prometheus())
