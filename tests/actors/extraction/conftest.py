"""Fixtures: every extraction test runs with isolation on (a child process) and off."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors.extraction import Extraction, ExtractLimits, extract_file

Extract = Callable[..., Extraction]


@pytest.fixture(params=[False, True], ids=["in_process", "isolated"])
def limits(request: pytest.FixtureRequest) -> ExtractLimits:
    return ExtractLimits(isolation=request.param, time_limit_seconds=30)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def extract(tmp_path: Path, out_dir: Path, limits: ExtractLimits) -> Extract:
    """``extract(data, name="upload", **limit_overrides)``: write ``data`` to a file and extract it."""

    def run(data: bytes, name: str = "upload", **overrides: Any) -> Extraction:
        path = tmp_path / name
        path.write_bytes(data)
        return extract_file(path, out_dir, dataclasses.replace(limits, **overrides))

    return run
