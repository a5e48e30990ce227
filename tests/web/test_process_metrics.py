"""Each process group's metrics directory is its own: claimed with a lock, emptied at start."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from web.process_metrics import claim, worker_exporter


def test_a_claimed_directory_is_emptied_and_cannot_be_claimed_twice(tmp_path: Path) -> None:
    stale = tmp_path / "worker-9191"
    stale.mkdir()
    (stale / "counter_4242.db").write_bytes(b"a dead run's samples")
    first = claim(str(tmp_path), "worker-9191")
    assert first == stale and list(first.iterdir()) == []
    assert claim(str(tmp_path), "worker-9191") is None, "held by the first group"
    assert claim(str(tmp_path), "web-unix:/run/chute.sock") == tmp_path / "web-unix-run-chute.sock"


def test_a_worker_takes_the_next_port_when_its_first_is_busy(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        port, directory = worker_exporter(str(tmp_path), "127.0.0.1", taken)
    assert port > taken and directory == tmp_path / f"worker-{port}"
    assert os.path.isdir(directory)


def test_a_worker_never_binds_a_port_another_worker_claimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers starting together: the second must not bind the first one's port even to test
    it, or the first one's exporter, binding it a moment later, finds it in use (a CI failure)."""
    import web.process_metrics as process_metrics

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        first = probe.getsockname()[1]
    assert claim(str(tmp_path), f"worker-{first}") is not None  # the first worker's claim
    probed: list[int] = []
    bindable = process_metrics._bindable

    def recording(host: str, port: int) -> bool:
        probed.append(port)
        return bindable(host, port)

    monkeypatch.setattr(process_metrics, "_bindable", recording)
    port, _ = worker_exporter(str(tmp_path), "127.0.0.1", first)
    assert port > first and first not in probed, probed


def test_a_port_in_use_elsewhere_leaves_its_lock_free(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        worker_exporter(str(tmp_path), "127.0.0.1", taken)
        assert claim(str(tmp_path), f"worker-{taken}") is not None, "the busy port's lock was let go"
