"""Prometheus multiprocess directories and exporter ports for ``chute web`` and ``chute worker``.

prometheus_client aggregates a process group (gunicorn's workers, Dramatiq's worker processes)
through files in one directory. Each group must have its own: a directory shared by two groups
makes each one export the other's samples, and files left by a dead run are exported forever.
Dramatiq's exporter also needs a port of its own per worker on a host.

So each group claims a directory named after what it binds (``worker-9191``,
``web-0.0.0.0-8000``), an exclusive ``flock`` on a lock file beside it proves nobody else on the host has
it (the lock is inherited across ``exec`` and released when the group's main process exits),
and the directory is emptied before the group starts.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
from pathlib import Path

#: How many ports above the configured one ``chute worker`` tries before giving up.
PORT_SEARCH = 50


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server binds
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def claim(metrics_dir: str, name: str) -> Path | None:
    """Lock and empty ``{metrics_dir}/{name}``; None if another live group holds it.

    The lock's file descriptor is left open and inheritable on purpose: it lives as long as
    this process and whatever it ``exec``s.
    """
    held = _lock(metrics_dir, name)
    return None if held is None else _keep(*held)


def _lock(metrics_dir: str, name: str) -> tuple[int, Path] | None:
    """The lock of ``{metrics_dir}/{name}`` (its descriptor) and that directory, or None if held."""
    root = Path(metrics_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", name)
    lock_fd = os.open(root / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return None
    return lock_fd, root / name


def _keep(lock_fd: int, directory: Path) -> Path:
    """Keep a taken lock for this process and what it ``exec``s, and empty its directory."""
    os.set_inheritable(lock_fd, True)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    return directory


def worker_exporter(metrics_dir: str, host: str, first_port: int) -> tuple[int, Path]:
    """The first port from ``first_port`` that is free on this host, with its claimed directory.

    Raises:
        RuntimeError: no free port in ``PORT_SEARCH`` tries.
    """
    for port in range(first_port, first_port + PORT_SEARCH):
        # The lock first, then the port: a worker starting at the same moment as another never
        # binds, even for a test, a port the other has claimed and its exporter is about to bind.
        held = _lock(metrics_dir, f"worker-{port}")
        if held is None:
            continue
        if not _bindable(host, port):  # something else on this host listens there
            os.close(held[0])
            continue
        return port, _keep(*held)
    raise RuntimeError(f"no free metrics port in {first_port}..{first_port + PORT_SEARCH - 1} on {host}")
