"""extract stores an image's derivatives at once, and has waited for every put when it returns
or raises, so that no put reads a scratch file after the stage removed it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from actors import extract
from actors.extraction.result import Derivative, Extraction
from models.errors import StorageUnavailable


class SlowStore:
    """A store whose puts each wait until all three are running (a put one after the other would
    break the barrier), and fail for one name, the first to end."""

    def __init__(self, failing: str | None = None):
        self.failing, self.lock = failing, threading.Lock()
        self.together = threading.Barrier(3, timeout=10)
        self.running = 0
        self.ended: list[str] = []

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        with self.lock:
            self.running += 1
        self.together.wait()
        if self.failing and not key.endswith(self.failing):
            time.sleep(0.05)  # the failing put ends first
        with self.lock:
            self.running -= 1
            self.ended.append(key)
        if self.failing and key.endswith(self.failing):
            raise StorageUnavailable("the store is down")


def image(tmp_path: Path) -> Extraction:
    names = ("thumb_256", "thumb_1024", "web")
    derivatives = []
    for name in names:
        (tmp_path / f"{name}.jpg").write_bytes(b"jpeg")
        derivatives.append(Derivative(name, f"{name}.jpg", "image/jpeg", tmp_path / f"{name}.jpg", 10, 10))
    return Extraction(kind="image", mime="image/jpeg", derivatives=derivatives)


JOB: Any = SimpleNamespace(tenant_id="ten_1", id="job_1")


def test_an_images_derivatives_are_put_at_once_under_their_keys(tmp_path: Path) -> None:
    store = SlowStore()
    result = extract._store_extraction(store, JOB, image(tmp_path))  # type: ignore[arg-type]
    assert store.running == 0 and len(store.ended) == 3
    assert [d["key"] for d in result["derivatives"]] == [
        f"ten_1/job_1/derivatives/{name}.jpg" for name in ("thumb_256", "thumb_1024", "web")
    ]


def test_a_failed_put_is_raised_after_every_put_ended(tmp_path: Path) -> None:
    store = SlowStore(failing="thumb_256.jpg")
    with pytest.raises(StorageUnavailable):
        extract._store_extraction(store, JOB, image(tmp_path))  # type: ignore[arg-type]
    assert len(store.ended) == 3 and store.running == 0
    assert store.ended[0].endswith("thumb_256.jpg")  # it failed first; the two after it were waited for
