"""Prefixed random identifiers: ``job_…``, ``upl_…``; the prefix tells a support engineer what an id is."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
