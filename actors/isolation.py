"""Running one stage of one job in a process of its own, so that a crash is charged to it alone.

When a worker process dies (SIGKILL, the OOM killer, a segfault in a decoder) every job it was
running comes back, and nothing tells which one killed it: charging them all let a poison
file fail the healthy jobs beside it. So a job that lost a run that way runs its stage next
in a child process that runs nothing else. If that child dies, the crash is the job's own;
after ``max_stage_crashes`` of them the job fails ``too_many_attempts``. Healthy jobs run
alone once and go on. The child is started with ``spawn`` (a fresh interpreter: the worker is
threaded, and its connections must not be shared), which costs a fraction of a second, paid
only by suspects.

The child answers in JSON on a pipe, never a pickle (it may have been handed a hostile file).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from actors.transient import StageCrashed, is_transient
from models import job as jobs
from models.db import session_scope
from models.errors import ChuteError, FileRejected, TransientError
from models.settings import Settings, configure, current_settings

log = logging.getLogger(__name__)

#: Signals that stop a child because the worker is shutting down (the child shares its process
#: group): a deploy, not the file, so they are not charged as crashes.
SHUTDOWN_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})

#: How often the waiting worker thread wakes (so a TimeLimit interrupt reaches it soon).
POLL_SECONDS = 0.2


def run_alone(stage: str, job_id: str, run_id: str) -> None:
    """Run ``stage`` of ``job_id`` in a child process and re-raise what it raised.

    Raises:
        FileRejected: the stage rejected the file, or its process died for the
            ``max_stage_crashes``-th time (``too_many_attempts``).
        StageCrashed: the child died; retried with backoff.
        TransientError: the stage failed transiently in the child.
        RuntimeError: the stage failed unexpectedly in the child.
    """
    settings = current_settings()
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(stage, job_id, run_id, settings, sender), name=f"chute-{stage}-alone")
    child.start()
    sender.close()
    try:
        while child.is_alive() and not receiver.poll(POLL_SECONDS):
            pass
        reply = _read_reply(receiver)
        child.join()
    except BaseException:  # a TimeLimit interrupt or a shutdown: the child must not outlive the run
        child.kill()
        child.join()
        raise
    finally:
        receiver.close()
    if reply is None:
        _crashed(stage, job_id, run_id, child.exitcode, settings)
    else:
        _raise_reply(json.loads(reply))


def _read_reply(receiver: Connection) -> bytes | None:
    """The child's answer, or None if it died without one (the pipe closed empty)."""
    try:
        return receiver.recv_bytes() if receiver.poll(0) else None
    except EOFError:
        return None


def _crashed(stage: str, job_id: str, run_id: str, exitcode: int | None, settings: Settings) -> None:
    if exitcode is not None and -exitcode in SHUTDOWN_SIGNALS:
        raise StageCrashed(f"the {stage} stage's process was stopped (signal {-exitcode}); not the file's fault")
    with session_scope() as session:
        crashes = jobs.record_crash(session, job_id, run_id)
    log.error("job %s: %s died running alone (exit code %s), crash %d of %d",
              job_id, stage, exitcode, crashes, settings.max_stage_crashes)  # fmt: skip
    if crashes >= settings.max_stage_crashes:
        raise FileRejected(
            f"the {stage} stage crashed its process {crashes} times running this file alone",
            code="too_many_attempts",
            details={"stage": stage, "crashes": crashes},
        )
    raise StageCrashed(f"the {stage} stage's process died (exit code {exitcode})")


def _raise_reply(reply: dict[str, Any]) -> None:
    kind = reply["kind"]
    if kind == "ok":
        return
    if kind == "rejected":
        raise FileRejected(reply["message"], code=reply["code"], details=reply.get("details") or {})
    if kind == "transient":
        raise TransientError(reply["message"])
    raise RuntimeError(reply["message"])


def _child(stage: str, job_id: str, run_id: str, settings: Settings, sender: Connection) -> None:
    """The child's whole life: run the stage function once and say how it went."""
    configure(settings)
    import importlib

    from actors.broker import broker
    from actors.tracking import process_owner

    importlib.import_module(f"actors.{stage}")  # declares this stage's actor (and only what it needs)

    with session_scope() as session:
        jobs.claim_run(session, job_id, run_id, process_owner())
    fn: Callable[[str], None] = broker.get_actor(stage).fn
    reply: dict[str, Any]
    try:
        getattr(fn, "__wrapped__", fn)(job_id)
        reply = {"kind": "ok"}
    except ChuteError as e:
        reply = {"kind": "rejected", "code": e.code, "message": e.message, "details": e.details}
    except Exception as e:
        reply = {"kind": "transient" if is_transient(e) else "error", "message": f"{type(e).__name__}: {e}"}
    sender.send_bytes(json.dumps(reply, default=str).encode())
    sender.close()
