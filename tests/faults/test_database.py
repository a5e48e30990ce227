"""PostgreSQL paused and restarted: the API answers 503 at once, and no stage runs unrecorded."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from tests.faults.conftest import FaultStack
from tests.faults.history import History


def test_a_paused_database_answers_503_and_jobs_go_on(stack: FaultStack, history: History) -> None:
    """Finding 8: with every PostgreSQL process stopped (a paused container: the kernel still
    accepts connections, nothing answers) the API must answer 503 instead of hanging, and the
    worker's stages must not run while their start cannot be recorded. The database stays
    paused until every call has answered: a call that hung would fail at the client's timeout."""
    before = [stack.upload(history, os.urandom(100_000), f"paused-{i}.bin") for i in range(4)]
    pids = stack.postgres.pause()
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda path: stack.call("GET", path, timeout=60),
                                    [f"/v1/jobs/{o['job_id']}" for o in before] + ["/v1/jobs", "/readyz"]))  # fmt: skip
            created = stack.call("POST", "/v1/uploads", json={"filename": "x.bin", "size": 10}, timeout=60)
    finally:
        stack.postgres.resume(pids)
    for status, body in [*answers, created]:
        assert status == 503, body
    assert stack.check(history) == []


def test_a_database_restart_mid_burst(stack: FaultStack, history: History) -> None:
    """Held: PostgreSQL restarts (every connection dropped) while jobs run."""
    for i in range(6):
        stack.upload(history, os.urandom(200_000), f"restart-{i}.bin")
    stack.postgres.restart()
    assert stack.check(history) == []
