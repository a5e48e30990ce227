"""Processes that die: a file that kills whatever runs it, and SIGKILL or SIGTERM mid-stage."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

from tests.faults.conftest import FaultStack
from tests.faults.history import History
from tests.support import services
from tests.support.files import sample_pdf


@contextlib.contextmanager
def killer(stack: FaultStack, victim: Callable[[], int | None], times: int) -> Iterator[list[int]]:
    """A thread that SIGKILLs the pid ``victim()`` names, up to ``times`` times (as the OOM
    killer or a segfault would), and starts the worker again whenever that took it down."""
    stop = threading.Event()
    killed: list[int] = []

    def loop() -> None:
        while not stop.is_set():
            pid = victim()
            if pid is not None and pid not in killed and len(killed) < times:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            if not stack.worker.alive():
                stack.ensure_worker()
            stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield killed
    finally:
        stop.set()
        thread.join()
        stack.ensure_worker()


def owner_pid(stack: FaultStack, job_id: str) -> int | None:
    owner = stack.job_row(job_id).get("run_owner")
    return int(owner.rsplit(":", 1)[1]) if owner else None


def test_a_poison_file_fails_alone(stack: FaultStack, history: History) -> None:
    """Finding 1: whatever runs the poison job is killed; its twelve neighbours in flight with it
    must complete, and only the poison fails ``too_many_attempts``. Its first chunk becomes a
    FIFO nobody writes once the upload is complete, so each run of it hangs until the killer
    strikes. The jobs are queued while no worker runs, so that the poison starts among them."""
    names = [f"healthy-{i}.bin" for i in range(3)] + ["poison.bin"] + [f"healthy-{i}.bin" for i in range(3, 12)]
    files = {name: os.urandom(100_000 if name == "poison.bin" else 300_000) for name in names}
    stack.worker.stop()
    poison: dict[str, str] = {}
    for name in names:
        expect = {"expect": ("failed",), "error_code": "too_many_attempts"} if name == "poison.bin" else {}
        out = stack.upload(history, files[name], name, **expect)
        if name == "poison.bin":
            poison.update(out)
    chunk = stack.staging_dir / "uploads" / poison["upload_id"] / "000000.chunk"
    chunk.unlink()
    os.mkfifo(chunk)
    stack.proxy.slow(0.02)  # keep the healthy jobs in flight while the poison runs
    limit = int(stack.env["CHUTE_MAX_STAGE_CRASHES"])
    stack.start_worker()  # the poison's first run hangs on its FIFO until the killer strikes
    with killer(stack, lambda: owner_pid(stack, poison["job_id"]), times=1 + limit) as killed:
        services.wait_until(lambda: stack.job_row(poison["job_id"])["status"] == "failed", 240, what="the poison")
    stack.proxy.slow(0)
    assert stack.check(history) == []
    assert len(killed) == 1 + limit  # the worker once (with its neighbours), then the poison's own process


def test_sigkill_in_every_stage(stack: FaultStack, history: History) -> None:
    """Held: the worker is SIGKILLed while jobs are in assemble, upload and extract, twice."""
    stack.proxy.slow(0.01)
    jobs = [stack.upload(history, os.urandom(400_000), f"kill-{i}.bin")["job_id"] for i in range(8)]
    jobs.append(stack.upload(history, sample_pdf(10), "kill.pdf")["job_id"])
    for _ in range(2):
        with contextlib.suppress(TimeoutError):  # the jobs may all be past it already
            services.wait_until(lambda: len({stack.job_row(j)["stage"] for j in jobs
                                             if stack.job_row(j)["status"] == "processing"}) >= 2,
                                30, interval=0.02, what="jobs in two stages")  # fmt: skip
        stack.worker.kill()
        stack.ensure_worker()
    stack.proxy.slow(0)
    assert stack.check(history) == []


def test_sigterm_mid_job(stack: FaultStack, history: History) -> None:
    """Held: a worker stopped with SIGTERM (a deploy) while jobs run."""
    stack.proxy.slow(0.01)
    for i in range(4):
        stack.upload(history, os.urandom(300_000), f"term-{i}.bin")
    time.sleep(0.5)  # let some start (a fault's timing, not an assertion)
    stack.restart_worker()
    stack.proxy.slow(0)
    assert stack.check(history) == []
