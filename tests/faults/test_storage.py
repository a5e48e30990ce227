"""S3 down, slow and cut: transient retries run to the end, and nothing is left in the bucket."""

from __future__ import annotations

import os
import time

from tests.faults.conftest import FaultStack
from tests.faults.history import History
from tests.support import services
from tests.support.files import corrupt_pdf

MiB = 1024 * 1024


def test_an_s3_outage_is_retried_to_the_end(stack: FaultStack, history: History) -> None:
    """Finding 2: S3 away for longer than ``max_retries`` deliveries used to last under the old
    attempt limit; every job must complete once it is back (retries are not crashes)."""
    outs = [stack.upload(history, os.urandom(200_000), f"outage-{i}.bin") for i in range(6)]
    services.wait_until(lambda: all(stack.job_row(o["job_id"])["assembled_at"] for o in outs), 60, what="assemble")
    stack.proxy.cut()
    time.sleep(10)  # the outage (a fault's length, not an assertion): many retries of every upload
    stack.proxy.restore()
    assert stack.check(history) == []


def test_a_slow_s3_is_waited_for(stack: FaultStack, history: History) -> None:
    """Held: S3 answering slowly (a congested path) while a multipart upload runs."""
    stack.proxy.slow(0.005)
    stack.upload(history, os.urandom(11 * MiB), "slow.bin", chunk_size=4 * MiB)
    stack.upload(history, os.urandom(100_000), "slow-small.bin")
    assert stack.check(history) == []


def test_a_cancel_with_s3_down_leaves_no_parts_nor_objects(stack: FaultStack, history: History) -> None:
    """Finding 3: a job cancelled mid multipart upload while S3 is down (the abort fails then),
    a job cancelled after its upload, and a job failed after its upload: once S3 is back the
    sweeper aborts the parts and deletes what is not wanted."""
    stack.proxy.slow(0.01)
    big = stack.upload(history, os.urandom(16 * MiB), "big.bin", chunk_size=4 * MiB)
    services.wait_until(lambda: stack.job_row(big["job_id"])["parts"], 120, interval=0.05, what="a stored part")
    stack.proxy.cut()
    status, body = stack.call("DELETE", f"/v1/jobs/{big['job_id']}")
    assert status == 202 and body["status"] == "cancelled", body
    history.expect(big["job_id"], "cancelled")
    stack.proxy.restore()

    stored = stack.upload(history, os.urandom(50_000), "stored.bin")
    services.wait_until(lambda: stack.job_row(stored["job_id"])["uploaded_at"] or
                        stack.job_row(stored["job_id"])["status"] == "completed", 60, what="stored")  # fmt: skip
    status, body = stack.call("DELETE", f"/v1/jobs/{stored['job_id']}")
    history.expect(stored["job_id"], "cancelled" if status == 202 else "completed")

    broken = stack.upload(history, corrupt_pdf(), "broken.pdf", expect=("failed",), error_code="corrupt_file")
    assert stack.check(history) == [], broken
